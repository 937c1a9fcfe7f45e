/**
 * The fine-tuning recipes, each defined once: what it trains on and how it reads it, which
 * settings apply to it, and what its report shows. The CLI, the data export, the default run and
 * the page ask a recipe instead of comparing its name. Browser-safe.
 */
import type { ClaimSet } from '../data/claims.js';
import type { NegBenchMcq } from '../data/mcq.js';

export const RECIPE_NAMES = ['nast', 'negbench'] as const;
export type RecipeName = (typeof RECIPE_NAMES)[number];

/** One choice set read from a record: the texts and the index of the correct one. */
export interface ChoiceSet {
  choices: string[];
  answer: number;
}

export interface Recipe {
  readonly name: RecipeName;
  /** How tables and messages name a run of it (NAST's recipe also runs uniform: `armLabel`). */
  readonly label: string;
  /** The record kind its choice sets come from, and how `dist/data.js` builds them. */
  readonly choiceKind: 'claim-set' | 'negbench-mcq';
  readonly buildHint: string;
  /** The second loss term's name: the cross-entropy over each choice set. */
  readonly choiceLoss: 'L_claim' | 'L_MCQ';
  readonly readChoices: (record: unknown) => ChoiceSet;
  /** Whether per-layer CTE scales apply (else every layer trains at one rate, and --cte is refused). */
  readonly layerScales: boolean;
  /** Whether validation and the report show MCQ accuracy beside claim accuracy. */
  readonly reportsMcq: boolean;
}

export const NAST_RECIPE: Recipe = {
  name: 'nast',
  label: 'NAST',
  choiceKind: 'claim-set',
  buildHint: 'dist/data.js --kind claims',
  choiceLoss: 'L_claim',
  readChoices: (r) => {
    const c = r as ClaimSet;
    return { choices: c.claims.map((x) => x.text), answer: c.answer };
  },
  layerScales: true,
  reportsMcq: false,
};

export const NEGBENCH_RECIPE: Recipe = {
  name: 'negbench',
  label: 'NegBench',
  choiceKind: 'negbench-mcq',
  buildHint: 'dist/data.js --kind mcq',
  choiceLoss: 'L_MCQ',
  readChoices: (r) => {
    const m = r as NegBenchMcq;
    return { choices: m.options, answer: m.answer };
  },
  layerScales: false,
  reportsMcq: true,
};

export const RECIPE_BY_NAME: Readonly<Record<RecipeName, Recipe>> = { nast: NAST_RECIPE, negbench: NEGBENCH_RECIPE };

/** The recipe called `name`, or an error that lists the names (`flag` names where it came from). */
export function recipeNamed(name: string, flag = '--recipe'): Recipe {
  const r = (RECIPE_BY_NAME as Record<string, Recipe | undefined>)[name];
  if (!r || !Object.hasOwn(RECIPE_BY_NAME, name)) throw new RangeError(`${flag} must be one of ${RECIPE_NAMES.join(', ')}, got ${JSON.stringify(name)}`);
  return r;
}

/** A recipe given by object or (as before recipes were objects) by name. */
export function asRecipe(r: Recipe | RecipeName): Recipe {
  return typeof r === 'string' ? recipeNamed(r) : r;
}

/**
 * What a run of `recipe` is called: NegBench, or NAST's recipe with CTE scales ('NAST') or at
 * one rate ('uniform'). `mode` is the lower-case form report.json has always carried.
 */
export function armLabel(recipe: Recipe, uniform: boolean): { label: string; mode: string } {
  if (recipe.layerScales && uniform) return { label: 'uniform', mode: 'uniform' };
  return { label: recipe.label, mode: recipe.name };
}
