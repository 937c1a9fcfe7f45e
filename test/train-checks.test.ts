import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkRecords } from '../src/nast/train-setup-node.js';
import type { EvalRecord } from '../src/data/records.js';

const records = (kind: string, n: number) => Array.from({ length: n }, (_, i) => ({ kind, image: `${kind}-${i}.png` }) as unknown as EvalRecord);
const split = [...records('claim-set', 7), ...records('negbench-mcq', 5), ...records('caption', 4)];

test('checkRecords: claim sets always; MCQs only for a recipe that reports them; at most max of each, the same seeded sample', () => {
  const withMcq = checkRecords(split, 3, 1, true);
  assert.equal(withMcq.map((r) => r.kind), ['claim-set', 'claim-set', 'claim-set', 'negbench-mcq', 'negbench-mcq', 'negbench-mcq']);
  const without = checkRecords(split, 3, 1, false);
  assert.equal(without.map((r) => r.kind), ['claim-set', 'claim-set', 'claim-set']);
  // Skipping the MCQs leaves the claim-set sample, and so the claim accuracy, as it was.
  assert.equal(without, withMcq.slice(0, 3));
  assert.equal(checkRecords(split, 3, 1, false), without, 'seeded');
  assert.equal(checkRecords(split, 100, 2, true).length, 12, 'a split smaller than max is taken whole');
});

test.run();
