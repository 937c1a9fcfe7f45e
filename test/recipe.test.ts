import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { armLabel, NAST_RECIPE, NEGBENCH_RECIPE, RECIPE_NAMES, recipeNamed } from '../src/nast/recipe.js';
import { readExamples } from '../src/nast/train-data.js';

const SRC = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src');

test('recipes are looked up by name once; an unknown name lists the known ones', () => {
  assert.is(recipeNamed('nast'), NAST_RECIPE);
  assert.is(recipeNamed('negbench'), NEGBENCH_RECIPE);
  assert.equal([...RECIPE_NAMES], ['nast', 'negbench']);
  assert.throws(() => recipeNamed('NegBench'), /--recipe must be one of nast, negbench, got "NegBench"/);
  assert.throws(() => recipeNamed('toString'), /--recipe must be one of/);
});

test('a recipe says what it trains on, whether CTE scales apply and what its report shows', () => {
  assert.is(NAST_RECIPE.choiceKind, 'claim-set');
  assert.is(NEGBENCH_RECIPE.choiceKind, 'negbench-mcq');
  assert.ok(NAST_RECIPE.layerScales);
  assert.not.ok(NEGBENCH_RECIPE.layerScales);
  assert.ok(NEGBENCH_RECIPE.reportsMcq);
  assert.equal(armLabel(NAST_RECIPE, false), { label: 'NAST', mode: 'nast' });
  assert.equal(armLabel(NAST_RECIPE, true), { label: 'uniform', mode: 'uniform' });
  assert.equal(armLabel(NEGBENCH_RECIPE, true), { label: 'NegBench', mode: 'negbench' });
  assert.equal(NAST_RECIPE.readChoices({ kind: 'claim-set', image: 'a', answer: 1, claims: [{ text: 'x' }, { text: 'y' }] }), { choices: ['x', 'y'], answer: 1 });
  assert.equal(NEGBENCH_RECIPE.readChoices({ kind: 'negbench-mcq', image: 'a', answer: 2, options: ['p', 'q', 'r', 's'] }), { choices: ['p', 'q', 'r', 's'], answer: 2 });
});

test('readExamples takes the recipe object or, as before, its name, with the same result', () => {
  const records = [
    { kind: 'claim-set', image: 'a.png', answer: 0, claims: [{ text: 'There is a cat.' }, { text: 'There is no cat.' }] },
    { kind: 'negbench-mcq', image: 'a.png', answer: 1, options: ['w', 'x', 'y', 'z'] },
    { kind: 'negated-caption', image: 'a.png', caption: 'A cat but no dog.' },
  ];
  assert.equal(readExamples(records, NAST_RECIPE, 't'), readExamples(records, 'nast', 't'));
  assert.equal(readExamples(records, NEGBENCH_RECIPE, 't')[0].choices, ['w', 'x', 'y', 'z']);
  assert.throws(() => readExamples(records.slice(1), NAST_RECIPE, 'data/train'), /no claim-set records for --recipe nast to train on \(build them with dist\/data.js --kind claims\)/);
});

test('train.js stays a thin CLI: at most 250 lines and no recipe names compared', () => {
  const text = readFileSync(join(SRC, 'train.ts'), 'utf8');
  assert.ok(text.split('\n').length <= 250, `src/train.ts has ${text.split('\n').length} lines`);
  assert.not.match(text, /['"](?:nast|negbench)['"]/);
});

test.run();
