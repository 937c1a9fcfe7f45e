import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Fact, Study } from '../src/data/facts.js';
import {
  CHEST_NEGATION_VOCAB, CHEXPERT_AFFIRMATIVES, GENERIC_TEMPLATES, NEGATION_CUES, RADIOLOGY_TEMPLATES,
  absenceCounterparts, buildClaimSet, buildClaimSets, buildNegBenchMcq, buildNegatedCaptions, buildPairedMcq, buildProbePairs,
  buildRetrievalNegCaptions, checkAffirmatives, contextualNegations, differingAttributes, hasNegationCue,
  makeRng, negationCueSpans, pairedMcqEligible, renderFact, rngFor, sample, shuffle, verbalizeFact,
  type DataRecord, type NegationVocab, type NegBenchTemplate,
} from '../src/data/builders.js';
import { ClipTokenizer } from '../src/models/tokenizer/index.js';

// ---------------------------------------------------------------------------------------------
// Hand-made fixtures

const chest1: Study = {
  id: 'cxr-1', patient: 'p1', image: 'cxr-1.jpg',
  facts: [
    { condition: 'pneumothorax', existence: 'present', location: 'left', severity: 'small' },
    { condition: 'consolidation', existence: 'present', location: 'right lower lobe' },
    { condition: 'atelectasis', existence: 'present', severity: 'mild' },
    { condition: 'cardiomegaly', existence: 'absent' },
    { condition: 'pleural effusion', existence: 'absent' },
    { condition: 'edema', existence: 'absent' },
    { condition: 'fracture', existence: 'absent' },
  ],
};
const chest2: Study = {
  id: 'cxr-2', patient: 'p2', image: 'cxr-2.jpg',
  facts: [
    { condition: 'pleural effusion', existence: 'present', location: 'bilateral', severity: 'large' },
    { condition: 'cardiomegaly', existence: 'present', severity: 'severe' },
    { condition: 'edema', existence: 'present', severity: 'severe' },
    { condition: 'pneumothorax', existence: 'absent' },
    { condition: 'pneumonia', existence: 'absent' },
    { condition: 'support devices', existence: 'absent' },
    { condition: 'lung lesion', existence: 'absent' },
  ],
};
const chest3: Study = {
  id: 'cxr-3', patient: 'p2', image: 'cxr-3.jpg',
  facts: [
    { condition: 'lung opacity', existence: 'present', location: 'right', severity: 'moderate' },
    { condition: 'pleural other', existence: 'present' },
    { condition: 'enlarged cardiomediastinum', existence: 'absent' },
    { condition: 'consolidation', existence: 'absent' },
    { condition: 'atelectasis', existence: 'absent' },
  ],
};
/** Too few conditions for a paired MCQ, and one condition stated both ways. */
const chest4: Study = {
  id: 'cxr-4', patient: 'p3', image: 'cxr-4.jpg',
  facts: [
    { condition: 'pleural effusion', existence: 'present', location: 'left', severity: 'small' },
    { condition: 'pleural effusion', existence: 'absent', location: 'right' },
    { condition: 'edema', existence: 'absent' },
  ],
};
const chestStudies = [chest1, chest2, chest3, chest4];

/** Miniature-world style: shapes in quadrants, its own vocabulary and affirmatives. */
const worldVocab: NegationVocab = {
  locations: [['top left', 'top right', 'bottom left', 'bottom right']],
  severities: [['small', 'large']],
};
const worldAffirmatives = {
  'red square': 'an empty red channel',
  'blue circle': 'a plain blue channel',
  'green triangle': 'a plain green channel',
  'yellow star': 'a plain yellow channel',
  'white cross': 'a dark background',
};
const world: Study[] = [0, 1, 2, 3, 4, 5].map((i) => ({
  id: `w-${i}`, patient: `w-${i}`, image: `world/${i}.png`,
  facts: [
    { condition: 'red square', existence: 'present', location: ['top left', 'bottom right'][i % 2], severity: ['small', 'large'][i % 2] },
    { condition: 'blue circle', existence: 'present', location: 'top right', severity: 'large' },
    { condition: 'green triangle', existence: 'absent' },
    { condition: 'yellow star', existence: 'absent' },
    { condition: 'white cross', existence: 'absent' },
  ],
}));

/** COCO-like: object facts, captions, no absent facts. */
const coco: Study = {
  id: 'coco-1', patient: 'coco-1', image: 'coco/1.jpg',
  facts: [
    { condition: 'dog', existence: 'present' },
    { condition: 'frisbee', existence: 'present' },
  ],
  captions: ['a dog catches a frisbee in a park', 'A brown dog jumping near some trees.'],
};
const cocoVocab = ['dog', 'frisbee', 'cat', 'car', 'tree', 'umbrella', 'person'];

const sameFact = (a: Fact, b: Fact): boolean => differingAttributes(a, b).length === 0;

// ---------------------------------------------------------------------------------------------
// Seeded randomness

test('rng: same seed same stream, values in [0, 1), shuffle and sample are permutations', () => {
  const a = makeRng(42);
  const b = makeRng(42);
  const c = makeRng(43);
  const xs = Array.from({ length: 1000 }, () => a());
  assert.equal(Array.from({ length: 1000 }, () => b()), xs);
  assert.not.equal(Array.from({ length: 1000 }, () => c()), xs);
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  assert.ok(Math.abs(mean - 0.5) < 0.05, `mean ${mean}`);
  const items = Array.from({ length: 20 }, (_, i) => i);
  const sh = shuffle(makeRng(1), items);
  assert.equal([...sh].sort((x, y) => x - y), items);
  assert.not.equal(sh, items);
  const s = sample(makeRng(1), items, 5);
  assert.is(new Set(s).size, 5);
  assert.equal(rngFor(7, 'x', 'a')(), rngFor(7, 'x', 'a')());
  assert.is.not(rngFor(7, 'x', 'ab')(), rngFor(7, 'xa', 'b')());
  assert.throws(() => makeRng(1.5), /integer/);
});

// ---------------------------------------------------------------------------------------------
// Negation cues and verbalisation

test('hasNegationCue matches whole cue words and phrases, case-insensitively', () => {
  for (const t of ['No effusion.', 'There is NOT a cat', 'without edema', 'Edema absent', 'free  of  edema', 'Lacking devices', 'no']) {
    assert.ok(hasNegationCue(t), t);
  }
  for (const t of ['normal heart size', 'nothing', 'a nodule', 'knot', 'device-free chest', 'freedom of', 'absently', 'notable', 'snow']) {
    assert.not.ok(hasNegationCue(t), t);
  }
  assert.equal(NEGATION_CUES, ['no', 'not', 'without', 'absent', 'free of', 'lacking']);
  const spans = negationCueSpans('No effusion, free of edema, not seen');
  assert.equal(spans.map((s) => s.cue), ['no', 'free of', 'not']);
  assert.is('No effusion, free of edema'.slice(spans[1].start, spans[1].end), 'free of');
});

test('every template states its fact: presence without a cue, absence with one, all attributes shown', () => {
  const facts: Fact[] = [...chest1.facts, ...chest2.facts, ...chest3.facts, ...world[0].facts];
  for (const family of [RADIOLOGY_TEMPLATES, GENERIC_TEMPLATES]) {
    for (const f of facts) {
      const list = f.existence === 'present' ? family.presence : family.absence;
      for (const t of list) {
        const slots = { cond: f.condition, loc: f.location, sev: f.existence === 'present' ? f.severity : undefined };
        if (t.applies && !t.applies(slots)) continue;
        const text = renderFact(f, t);
        const where = `${family.name}/${t.id}: ${text}`;
        assert.ok(text.toLowerCase().includes(f.condition), where);
        assert.is(hasNegationCue(text), f.existence === 'absent', where);
        if (f.location !== undefined) assert.ok(text.includes(f.location === 'bilateral' ? 'bilateral' : f.location), where);
        if (f.severity !== undefined && f.existence === 'present') assert.ok(text.toLowerCase().includes(f.severity), where);
        assert.match(text, /^[A-Z].*\.$/, where);
      }
    }
  }
  // The seeded choice varies with the generator.
  const seen = new Set<string>();
  const rng = makeRng(3);
  for (let i = 0; i < 60; i++) seen.add(verbalizeFact(chest2.facts[3], rng).template);
  assert.ok(seen.size >= 5, `templates used: ${[...seen]}`);
});

// ---------------------------------------------------------------------------------------------
// Contextual negations

test('contextual negations change exactly one attribute, of the kind they name', () => {
  const kinds = new Set<string>();
  for (const [facts, vocab] of [[chestStudies.flatMap((s) => s.facts), CHEST_NEGATION_VOCAB], [world[0].facts, worldVocab]] as const) {
    for (const f of facts.filter((x) => x.existence === 'present')) {
      const negs = contextualNegations(f, vocab);
      assert.ok(negs.length >= 1);
      for (const g of negs) {
        const diff = differingAttributes(f, g.fact);
        assert.equal(diff, [g.kind], `${JSON.stringify(f)} -> ${JSON.stringify(g.fact)}`);
        kinds.add(g.kind);
      }
      assert.is(negs.filter((g) => g.kind === 'existence').length, 1);
      assert.is(negs.some((g) => g.kind === 'location'), f.location !== undefined);
      assert.is(negs.some((g) => g.kind === 'severity'), f.severity !== undefined);
      assert.is(new Set(negs.map((g) => JSON.stringify(g.fact))).size, negs.length, 'no duplicates');
    }
  }
  assert.equal([...kinds].sort(), ['existence', 'location', 'severity']);
  const left = contextualNegations(chest1.facts[0]).filter((g) => g.kind === 'location').map((g) => g.fact.location);
  assert.equal(left, ['right', 'bilateral']);
  const lobe = contextualNegations(chest1.facts[1]).filter((g) => g.kind === 'location').map((g) => g.fact.location);
  assert.is(lobe[0], 'left lower lobe', 'the mirror comes first');
  const small = contextualNegations(chest1.facts[0]).filter((g) => g.kind === 'severity').map((g) => g.fact.severity);
  assert.equal(small, ['moderate', 'large'], 'severity stays on its own scale');
  assert.throws(() => contextualNegations(chest1.facts[3]), /must be present/);
  assert.throws(() => contextualNegations({ condition: '', existence: 'present' }), /condition/);
});

// ---------------------------------------------------------------------------------------------
// Claim sets

test('claim sets: k claims, exactly one true, the answer points at it, negatives are false', () => {
  let sets = 0;
  let negatedSets = 0;
  const kinds = new Set<string>();
  for (const k of [4, 5, 6, 7]) {
    for (const [study, vocab, family] of [
      ...chestStudies.map((s) => [s, CHEST_NEGATION_VOCAB, RADIOLOGY_TEMPLATES] as const),
      ...world.map((s) => [s, worldVocab, GENERIC_TEMPLATES] as const),
    ]) {
      for (const cs of buildClaimSets(study, { seed: 11, k, vocab, templates: family })) {
        sets++;
        if (hasNegationCue(cs.claims[cs.answer].text)) negatedSets++;
        assert.is(cs.kind, 'claim-set');
        assert.is(cs.claims.length, k);
        assert.is(cs.claims.filter((c) => c.negation === null).length, 1);
        assert.is(cs.claims.filter((c) => c.origin === 'true').length, 1);
        const truth = cs.claims[cs.answer];
        assert.is(truth.negation, null);
        assert.ok(sameFact(truth.fact, study.facts[cs.factIndex]));
        assert.is(new Set(cs.claims.map((c) => c.text)).size, k, 'distinct texts');
        for (const c of cs.claims) {
          if (c.origin === 'contextual') {
            // Around an absent truth a negative may also state one attribute the truth leaves open.
            assert.equal(differingAttributes(truth.fact, c.fact), c.added === undefined ? [c.negation!] : [c.negation!, c.added]);
            if (c.added !== undefined) assert.is(truth.fact[c.added], undefined, c.text);
            kinds.add(c.negation!);
          }
          if (c.origin !== 'true' && truth.fact.existence === 'absent') assert.is(c.negation, 'existence', c.text);
          if (c.origin !== 'true') assert.not.ok(study.facts.some((f) => sameFact(f, c.fact)), `negative ${c.text} is a study fact`);
          assert.is(hasNegationCue(c.text), c.fact.existence === 'absent', c.text);
        }
      }
    }
  }
  assert.ok(sets >= 20, `${sets} sets`);
  assert.equal([...kinds].sort(), ['existence', 'location', 'severity']);
  assert.ok(negatedSets >= 20 && negatedSets < sets, `${negatedSets} of ${sets} sets have a negated true claim`);
  // Answers land in every position.
  const answers = new Set(chestStudies.flatMap((s) => [1, 2, 3, 4, 5, 6].flatMap((seed) => buildClaimSets(s, { seed, k: 5 }).map((c) => c.answer))));
  assert.is(answers.size, 5);
});

test('claim sets: contextual negatives come first, other facts only fill, too few gives null', () => {
  // atelectasis (mild, no location): 1 existence + 2 severity negations, so k = 4 needs no filler.
  const a = buildClaimSet(chest1, 2, { seed: 1, k: 4 })!;
  assert.ok(a.claims.every((c) => c.origin !== 'other-fact'));
  const b = buildClaimSet(chest1, 2, { seed: 1, k: 6 })!;
  assert.is(b.claims.filter((c) => c.origin === 'other-fact').length, 2);
  assert.is(buildClaimSet(chest1, 2, { seed: 1, k: 6, fillFromOtherFacts: false }), null);
  // A second, right-sided effusion makes "effusion on the right" true: it must not be a negative.
  const twoSided: Study = { ...chest4, facts: [chest4.facts[0], { condition: 'pleural effusion', existence: 'present', location: 'right', severity: 'small' }, chest4.facts[2]] };
  for (let seed = 0; seed < 10; seed++) {
    const cs = buildClaimSet(twoSided, 0, { seed, k: 4 });
    assert.ok(cs !== null);
    assert.not.ok(cs!.claims.some((c) => c.origin !== 'true' && c.fact.existence === 'present' && c.fact.location === 'right' && c.fact.severity === 'small'));
  }
  assert.throws(() => buildClaimSet(chest1, 3, { seed: 1, polarity: 'present' }), /is absent; with polarity "present"/);
  assert.throws(() => buildClaimSet(chest1, 0, { seed: 1, polarity: 'absent' }), /is present; with polarity "absent"/);
  assert.throws(() => buildClaimSets(chest1, { seed: 1, polarity: 'negated' as 'absent' }), /polarity must be "present", "absent", "both", got "negated"/);
  assert.throws(() => buildClaimSet(chest1, 99, { seed: 1 }), /no fact 99/);
  assert.throws(() => buildClaimSets(chest1, { seed: 1, k: 1 }), /k must be/);
  assert.throws(() => buildClaimSets({ ...chest1, facts: [{ condition: 'x', existence: 'maybe' as 'present' }] }, { seed: 1 }), /cxr-1 fact 0.*existence/);
});

/**
 * Whether the study's annotations make the fact false. A presence is refuted by an absence of
 * the condition that covers its location (an unlocalised absence covers every location); an
 * absence by a presence of the condition inside its scope.
 */
function refuted(f: Fact, study: Study): boolean {
  return study.facts.some((g) => g.condition === f.condition && g.existence !== f.existence && (f.existence === 'present'
    ? g.location === undefined || g.location === f.location
    : f.location === undefined || g.location === f.location));
}

test('claim sets around absent facts: one negated true claim, every negative refuted by the study', () => {
  let sets = 0;
  const added = new Set<string>();
  for (const k of [4, 5, 7]) {
    for (const [study, vocab, family] of [
      ...chestStudies.map((s) => [s, CHEST_NEGATION_VOCAB, RADIOLOGY_TEMPLATES] as const),
      ...world.map((s) => [s, worldVocab, GENERIC_TEMPLATES] as const),
    ]) {
      const built = buildClaimSets(study, { seed: 3, k, vocab, templates: family, polarity: 'absent' });
      assert.is(built.length, study.facts.filter((f) => f.existence === 'absent').length, `${study.id}: a set for every absent fact`);
      for (const cs of built) {
        sets++;
        assert.is(cs.claims.length, k);
        assert.is(cs.claims.filter((c) => c.origin === 'true').length, 1);
        const truth = cs.claims[cs.answer];
        assert.is(truth.origin, 'true');
        assert.is(truth.fact.existence, 'absent');
        assert.ok(sameFact(truth.fact, study.facts[cs.factIndex]));
        assert.ok(hasNegationCue(truth.text), `true claim carries a negation cue: ${truth.text}`);
        assert.not.ok(refuted(truth.fact, study), truth.text);
        // The plain existence flip is always there ("There is no X." against "There is X.").
        assert.ok(cs.claims.some((c) => c.origin === 'contextual' && c.added === undefined && differingAttributes(truth.fact, c.fact).join() === 'existence'));
        for (const c of cs.claims) {
          if (c.origin === 'true') continue;
          assert.ok(refuted(c.fact, study), `${study.id}: negative "${c.text}" is false for the study (truth "${truth.text}")`);
          assert.not.ok(study.facts.some((f) => sameFact(f, c.fact)), c.text);
          if (c.origin === 'contextual') {
            assert.is(c.fact.existence, 'present', c.text);
            assert.is(c.fact.condition, truth.fact.condition);
            if (c.added) added.add(c.added);
          }
        }
      }
    }
  }
  assert.ok(sets >= 40, `${sets} sets`);
  assert.equal([...added].sort(), ['location', 'severity']);
  // Same seed, same sets; the default polarity is both, and each set is the same either way.
  const a = buildClaimSets(chest1, { seed: 9, polarity: 'absent' });
  assert.equal(buildClaimSets(chest1, { seed: 9, polarity: 'absent' }), a);
  assert.ok([10, 11, 12].some((seed) => JSON.stringify(buildClaimSets(chest1, { seed, polarity: 'absent' })) !== JSON.stringify(a)));
  const both = buildClaimSets(chest1, { seed: 9 });
  const present = buildClaimSets(chest1, { seed: 9, polarity: 'present' });
  assert.equal(both, [...present, ...a].sort((x, y) => x.factIndex - y.factIndex));
  assert.ok(present.every((cs) => !hasNegationCue(cs.claims[cs.answer].text)));
});

test('absence counterparts: existence flipped, at most one attribute added, none changed', () => {
  const vocab: NegationVocab = { locations: [['left', 'right'], ['left', 'top']], severities: [['small', 'large']] };
  const bare = absenceCounterparts({ condition: 'edema', existence: 'absent' }, vocab);
  assert.equal(bare.map((g) => [g.added ?? '-', g.fact.location ?? g.fact.severity ?? '-']),
    [['-', '-'], ['location', 'left'], ['location', 'right'], ['location', 'top'], ['severity', 'small'], ['severity', 'large']]);
  for (const g of bare) {
    assert.is(g.kind, 'existence');
    assert.equal(differingAttributes({ condition: 'edema', existence: 'absent' }, g.fact), g.added ? ['existence', g.added] : ['existence']);
  }
  // "no effusion on the right" says nothing about the left: the location stays.
  const right = absenceCounterparts({ condition: 'pleural effusion', existence: 'absent', location: 'right' }, vocab);
  assert.ok(right.every((g) => g.fact.location === 'right' && g.fact.existence === 'present'));
  assert.equal(right.map((g) => g.fact.severity ?? '-'), ['-', 'small', 'large']);
  const sized = absenceCounterparts({ condition: 'edema', existence: 'absent', severity: 'mild' }, vocab);
  assert.ok(sized.every((g) => g.fact.severity === 'mild' && g.added !== 'severity'));
  assert.throws(() => absenceCounterparts(chest1.facts[0]), /must be absent/);
});

test('claim sets around absent facts: narrower negatives, contradicted absences and filling', () => {
  // chest4: effusion present on the left, absent on the right. "Effusion on the left" would be
  // true, so every negative of the right-sided absence stays on the right.
  const idx = chest4.facts.findIndex((f) => f.existence === 'absent' && f.location === 'right');
  for (let seed = 0; seed < 8; seed++) {
    const cs = buildClaimSet(chest4, idx, { seed, k: 4 })!;
    assert.ok(cs !== null);
    assert.match(cs.claims[cs.answer].text, /right/);
    for (const c of cs.claims) {
      if (c.origin === 'contextual') assert.is(c.fact.location, 'right', c.text);
      if (c.origin !== 'true') assert.not.ok(c.fact.condition === 'pleural effusion' && c.fact.existence === 'present' && c.fact.location === 'left', c.text);
    }
  }
  // A presence of the condition inside the absence's scope: the annotations disagree, no set.
  const clash: Study = { id: 'clash', patient: 'c', image: 'c.jpg', facts: [
    { condition: 'edema', existence: 'absent' },
    { condition: 'edema', existence: 'present', location: 'left' },
    { condition: 'pneumothorax', existence: 'absent', location: 'right' },
    { condition: 'pneumothorax', existence: 'present' },
    { condition: 'fracture', existence: 'absent' },
  ] };
  assert.is(buildClaimSet(clash, 0, { seed: 1 }), null);
  assert.is(buildClaimSet(clash, 2, { seed: 1 }), null);
  assert.equal(buildClaimSets(clash, { seed: 1, polarity: 'absent' }).map((cs) => cs.factIndex), [4]);
  // Without vocabulary the flip is the only contextual negative; other facts fill, never padding.
  const none: NegationVocab = { locations: [], severities: [] };
  const filled = buildClaimSet(chest1, 3, { seed: 2, k: 4, vocab: none })!;
  assert.equal(filled.claims.map((c) => c.origin).sort(), ['contextual', 'other-fact', 'other-fact', 'true']);
  for (const c of filled.claims) if (c.origin === 'other-fact') assert.ok(refuted(c.fact, chest1), c.text);
  assert.is(buildClaimSet(chest1, 3, { seed: 2, k: 4, vocab: none, fillFromOtherFacts: false }), null);
  const lone: Study = { id: 'lone', patient: 'l', image: 'l.jpg', facts: [{ condition: 'edema', existence: 'absent' }] };
  assert.is(buildClaimSet(lone, 0, { seed: 2, k: 3, vocab: none }), null);
  assert.is(buildClaimSet(lone, 0, { seed: 2, k: 2, vocab: none })!.claims.length, 2);
});

// ---------------------------------------------------------------------------------------------
// Single negated captions and Retrieval-Neg captions

test('negated captions state study facts, at least one absent and negated', () => {
  for (const s of [...chestStudies, ...world]) {
    const caps = buildNegatedCaptions(s, { seed: 5, count: 3 });
    assert.ok(caps.length >= 1);
    assert.is(new Set(caps.map((c) => c.caption)).size, caps.length);
    for (const c of caps) {
      assert.is(c.kind, 'negated-caption');
      assert.ok(c.facts.length >= 1 && c.facts.length <= 3);
      assert.is(c.templates.length, c.facts.length);
      assert.ok(c.facts.some((f) => f.existence === 'absent'));
      assert.ok(c.facts.every((f) => s.facts.some((g) => sameFact(f, g))));
      assert.ok(hasNegationCue(c.caption), c.caption);
      for (const f of c.facts) assert.ok(c.caption.toLowerCase().includes(f.condition), c.caption);
    }
  }
  assert.equal(buildNegatedCaptions(coco, { seed: 5 }), [], 'no absent fact, no negated caption');
  const one = buildNegatedCaptions(chest1, { seed: 5, maxFacts: 1, count: 4 });
  assert.ok(one.every((c) => c.facts.length === 1 && c.facts[0].existence === 'absent'));
});

test('Retrieval-Neg captions: the original plus "There is no N in the image." before or after', () => {
  const caps = buildRetrievalNegCaptions(coco, { seed: 2, count: 6, vocabulary: cocoVocab });
  assert.is(caps.length, 6);
  const positions = new Set<string>();
  for (const c of caps) {
    assert.is(c.kind, 'retrieval-neg-caption');
    assert.ok(coco.captions!.includes(c.original));
    assert.not.ok(['dog', 'frisbee', 'tree'].includes(c.negative), `${c.negative} is in the image or its captions`);
    const neg = `There is no ${c.negative} in the image.`;
    if (c.position === 'before') assert.ok(c.caption.startsWith(neg + ' '), c.caption);
    else assert.ok(c.caption.endsWith(' ' + neg), c.caption);
    assert.ok(c.caption.toLowerCase().includes(c.original.toLowerCase().replace(/\.$/, '')));
    positions.add(c.position);
  }
  assert.is(positions.size, 2);
  assert.is(new Set(caps.map((c) => c.original)).size, 2, 'both source captions are used');
  assert.equal(buildRetrievalNegCaptions(chest1, { seed: 2 }), [], 'no captions');
});

// ---------------------------------------------------------------------------------------------
// Probe pairs

test('probe pairs: both polarities, caption/foil as in NAST appendix D, equal CLIP token lengths', () => {
  const pairs = buildProbePairs(chestStudies);
  assert.ok(pairs.some((p) => p.polarity === 'affirmative') && pairs.some((p) => p.polarity === 'negated'));
  for (const p of pairs) {
    assert.is(p.kind, 'probe-pair');
    const [aff, neg] = [`There is severe ${p.condition}.`, `There is no ${p.condition}.`];
    assert.equal([p.caption, p.foil], p.polarity === 'affirmative' ? [aff, neg] : [neg, aff]);
    const study = chestStudies.find((s) => s.id === p.studyId)!;
    assert.ok(study.facts.some((f) => f.condition === p.condition && f.existence === (p.polarity === 'affirmative' ? 'present' : 'absent')));
  }
  assert.not.ok(pairs.some((p) => p.studyId === 'cxr-4' && p.condition === 'pleural effusion'), 'a condition stated both ways is skipped');
  const severe = buildProbePairs(chestStudies, { presentSeverity: 'severe' });
  assert.equal(severe.filter((p) => p.polarity === 'affirmative').map((p) => p.condition).sort(), ['cardiomegaly', 'edema']);
  assert.ok(severe.some((p) => p.polarity === 'negated'));
  const capped = buildProbePairs(chestStudies, { maxPairs: 6, seed: 1 });
  assert.is(capped.length, 6);
  assert.is(capped.filter((p) => p.polarity === 'affirmative').length, 3);

  // The tracer patches position by position, so both captions must have the same token count.
  const vocabPath = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'models', 'openai-bpe', 'bpe_simple_vocab_16e6.txt.gz');
  assert.ok(existsSync(vocabPath), `CLIP vocabulary expected at ${vocabPath}`);
  const tok = ClipTokenizer.fromOpenAIGzip(new Uint8Array(readFileSync(vocabPath)), vocabPath);
  assert.is(tok.encode('severe').length, 1);
  assert.is(tok.encode('no').length, 1);
  for (const p of [...pairs, ...buildProbePairs(world)]) {
    assert.is(tok.encode(p.caption).length, tok.encode(p.foil).length, `${p.caption} | ${p.foil}`);
  }
});

// ---------------------------------------------------------------------------------------------
// NegBench MCQs

test('NegBench MCQs: the answer index points at the correct template text', () => {
  const types: NegBenchTemplate[] = ['affirmation', 'negation', 'hybrid'];
  for (const s of [...chestStudies, ...world, coco]) {
    for (const answerType of types) {
      const m = buildNegBenchMcq(s, { seed: 9, answerType, vocabulary: cocoVocab, article: s === coco })!;
      assert.ok(m !== null, s.id);
      assert.is(m.kind, 'negbench-mcq');
      assert.is(m.options.length, 4);
      assert.is(new Set(m.options).size, 4);
      assert.is(m.answerType, answerType);
      assert.is(m.optionTypes[m.answer], answerType);
      assert.is(m.optionTypes.filter((t) => !t.startsWith('false-')).length, 1);
      const np = (c: string): string => (s === coco ? `${/^[aeiou]/.test(c) ? 'an' : 'a'} ${c}` : c);
      const [A, B] = [np(m.positives[0]), np(m.positives[m.positives.length - 1])];
      const N = np(m.negative);
      const want = answerType === 'affirmation' ? (m.positives.length > 1 ? `This image features ${A} and ${B}.` : `This image features ${A}.`)
        : answerType === 'negation' ? `This image does not feature ${N}.` : `This image features ${B}, but not ${N}.`;
      assert.is(m.options[m.answer], want);
      const at = (t: string): string => m.options[m.optionTypes.indexOf(t as never)];
      assert.is(at('false-hybrid'), `This image features ${N}, but not ${B}.`);
      assert.is(at('false-affirmation'), `This image features ${N}.`);
      assert.is(at('false-negation'), `This image does not feature ${A}.`);
      assert.ok(m.positives.every((c) => s.facts.some((f) => f.condition === c && f.existence === 'present')));
      assert.not.ok(s.facts.some((f) => f.condition === m.negative && f.existence === 'present'));
    }
  }
  const drawn = new Set(world.concat(chestStudies).flatMap((s) => [1, 2, 3, 4].map((seed) => buildNegBenchMcq(s, { seed })!.answerType)));
  assert.is(drawn.size, 3, 'all three templates are drawn');
  assert.is(buildNegBenchMcq(coco, { seed: 1 }), null, 'no absent fact and no vocabulary: no negative');
  assert.is(buildNegBenchMcq({ ...chest1, facts: chest1.facts.filter((f) => f.existence === 'absent') }, { seed: 1 }), null);
  assert.throws(() => buildNegBenchMcq(chest1, { seed: 1, answerType: 'maybe' as NegBenchTemplate }), /answerType/);
});

// ---------------------------------------------------------------------------------------------
// Paired polarity MCQs

test('Table 5 mapping is complete and free of negation cues; a mapping with a cue is refused', () => {
  const conditions = ['atelectasis', 'cardiomegaly', 'consolidation', 'edema', 'enlarged cardiomediastinum', 'fracture', 'lung lesion',
    'lung opacity', 'pleural effusion', 'pleural other', 'pneumonia', 'pneumothorax', 'support devices'];
  for (const c of conditions) assert.type(CHEXPERT_AFFIRMATIVES[c], 'string', c);
  assert.is(CHEXPERT_AFFIRMATIVES['cardiomegaly'], 'normal heart size');
  checkAffirmatives(CHEXPERT_AFFIRMATIVES);
  assert.throws(() => checkAffirmatives({ edema: 'no edema' }), /negation cue/);
  assert.throws(() => buildPairedMcq(chest1, { seed: 1, affirmatives: { edema: 'lungs free of fluid' } }), /negation cue/);
});

test('paired MCQs: twins share the answer, affirmative twins have no cue, negated twins do', () => {
  let built = 0;
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    for (const [s, opts] of [
      ...chestStudies.map((x) => [x, { seed }] as const),
      ...world.map((x) => [x, { seed, affirmatives: worldAffirmatives, names: {}, question: 'Which description fits this image?' }] as const),
    ]) {
      const m = buildPairedMcq(s, opts);
      assert.is(m !== null, pairedMcqEligible(s), s.id);
      if (m === null) continue;
      built++;
      assert.is(m.kind, 'paired-mcq');
      assert.is(m.conditions.length, 3);
      assert.is(m.negated.answer, m.affirmative.answer);
      assert.is(m.negated.options.length, 4);
      assert.is(m.affirmative.options.length, 4);
      assert.is(new Set(m.negated.options).size, 4);
      assert.is(new Set(m.affirmative.options).size, 4);
      assert.is(new Set(m.configurations.map((c) => c.join())).size, 4);
      const truth = m.conditions.map((c) => s.facts.find((f) => f.condition === c)!.existence === 'present');
      assert.equal(m.configurations[m.negated.answer], truth);
      assert.ok(truth.includes(true) && truth.includes(false), 'the true option has both polarities');
      m.configurations.forEach((cfg, i) => {
        const neg = m.negated.options[i];
        const aff = m.affirmative.options[i];
        assert.not.ok(hasNegationCue(aff), aff);
        assert.is(hasNegationCue(neg), cfg.includes(false), neg);
        if (!cfg.includes(false)) assert.is(aff, neg, 'nothing to rewrite when all are present');
        const map = 'affirmatives' in opts ? worldAffirmatives : CHEXPERT_AFFIRMATIVES;
        m.conditions.forEach((c, j) => {
          if (!cfg[j]) assert.ok(aff.toLowerCase().includes((map as Record<string, string>)[c]), `${aff} lacks the alternative for ${c}`);
        });
      });
    }
  }
  assert.ok(built >= 20, `${built} built`);
  assert.not.ok(pairedMcqEligible(chest4));
  assert.ok(pairedMcqEligible(chest2));
  // Appendix A: "pulmonary edema" is the present name of Edema.
  const withEdema = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((seed) => buildPairedMcq(chest2, { seed })!).find((m) => m.conditions.includes('edema'));
  assert.ok(withEdema !== undefined);
  assert.ok(withEdema!.negated.options.some((o) => /pulmonary edema/i.test(o)));
});

// ---------------------------------------------------------------------------------------------
// Determinism and records

function everything(seed: number, studies: readonly Study[]): DataRecord[] {
  const out: DataRecord[] = [];
  for (const s of studies) {
    out.push(...buildClaimSets(s, { seed, k: 5 }));
    out.push(...buildNegatedCaptions(s, { seed, count: 2 }));
    out.push(...buildRetrievalNegCaptions(s, { seed, count: 2, vocabulary: cocoVocab }));
    const q = buildNegBenchMcq(s, { seed, vocabulary: cocoVocab });
    if (q) out.push(q);
    const p = buildPairedMcq(s, { seed });
    if (p) out.push(p);
  }
  out.push(...buildProbePairs(studies, { seed, maxPairs: 8 }));
  return out;
}

test('same seed gives identical records, a different seed different ones, input order does not matter', () => {
  const studies = [...chestStudies, coco];
  const a = everything(123, studies);
  assert.equal(everything(123, studies), a);
  assert.not.equal(everything(124, studies), a);
  // Per-study records depend on (seed, study), not on which studies came before.
  const key = (r: DataRecord): string => JSON.stringify(r);
  const perStudy = (recs: DataRecord[]): string[] => recs.filter((r) => r.kind !== 'probe-pair').map(key).sort();
  assert.equal(perStudy(everything(123, [...studies].reverse())), perStudy(a));
  // Each builder on its own varies with the seed.
  const differ = (f: (seed: number) => unknown): boolean => [2, 3, 4, 5].some((s) => JSON.stringify(f(s)) !== JSON.stringify(f(1)));
  assert.ok(differ((seed) => buildClaimSets(chest1, { seed })));
  assert.ok(differ((seed) => buildNegatedCaptions(chest1, { seed })));
  assert.ok(differ((seed) => buildRetrievalNegCaptions(coco, { seed, vocabulary: cocoVocab })));
  assert.ok(differ((seed) => buildNegBenchMcq(chest1, { seed })));
  assert.ok(differ((seed) => buildPairedMcq(chest1, { seed })));
  assert.ok(differ((seed) => buildProbePairs(chestStudies, { seed, maxPairs: 4 })));
});

test('records are plain JSON with a kind', () => {
  const recs = everything(5, [...chestStudies, coco]);
  const kinds = new Set(recs.map((r) => r.kind));
  assert.equal([...kinds].sort(), ['claim-set', 'negated-caption', 'negbench-mcq', 'paired-mcq', 'probe-pair', 'retrieval-neg-caption']);
  for (const r of recs) {
    assert.equal(JSON.parse(JSON.stringify(r)), r);
    assert.type(r.image, 'string');
    assert.type(r.studyId, 'string');
  }
});

test.run();
