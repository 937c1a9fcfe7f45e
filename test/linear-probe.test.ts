import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fitLogistic, linearProbes, probeMarkdown, type ProbeLabels } from '../src/world/linear-probe.js';
import { makeRng } from '../src/data/rng.js';

/** n points in 5-D; attribute "a:sep" is the sign of a fixed direction plus noise, "a:noise" a coin flip, "b:rare" a rare separable class. */
function problem(n: number, seed: number): { x: Float64Array; labels: ProbeLabels[] } {
  const rng = makeRng(seed);
  const x = new Float64Array(n * 5);
  const labels: ProbeLabels[] = [];
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < 5; k++) x[i * 5 + k] = 2 * rng() - 1;
    const s = x[i * 5] + 0.5 * x[i * 5 + 1];
    labels.push({ row: i, labels: { 'a:sep': s > 0.1 ? 1 : 0, 'a:noise': rng() < 0.5 ? 1 : 0, 'b:rare': x[i * 5 + 2] > 0.8 ? 1 : 0 } });
  }
  return { x, labels };
}

test('fitLogistic: separable data is separated; the decision is a linear function', () => {
  const { x, labels } = problem(400, 1);
  const rows = labels.map((l) => l.row);
  const f = fitLogistic(x, 5, rows, labels.map((l) => l.labels['a:sep']));
  const acc = rows.filter((r, i) => (f(r) > 0 ? 1 : 0) === labels[i].labels['a:sep']).length / rows.length;
  assert.ok(acc > 0.98, `training accuracy ${acc}`);
  assert.throws(() => fitLogistic(x, 5, [0, 1], [1]), /2 rows but 1 labels/);
});

test('linearProbes: held-out balanced accuracy per attribute and family; chance for noise; a rare class is not lost to the majority', () => {
  const { x, labels } = problem(1000, 2);
  const train = labels.slice(0, 700);
  const test_ = labels.slice(700).map((l) => ({ ...l }));
  const r = linearProbes(x, 5, train, test_);
  const by = Object.fromEntries(r.attributes.map((a) => [a.attribute, a]));
  assert.ok(by['a:sep'].balanced > 0.95, `separable ${by['a:sep'].balanced}`);
  assert.ok(Math.abs(by['a:noise'].balanced - 0.5) < 0.08, `noise ${by['a:noise'].balanced}`);
  assert.ok(by['b:rare'].majority > 0.85, 'the rare class is about 10 %');
  assert.ok(by['b:rare'].balanced > 0.9, `rare class found, balanced ${by['b:rare'].balanced}`);
  const fam = Object.fromEntries(r.families.map((f) => [f.family, f]));
  assert.is(fam.a.attributes, 2);
  assert.ok(Math.abs(fam.a.mean - (by['a:sep'].balanced + by['a:noise'].balanced) / 2) < 1e-12);
  assert.is(fam.a.min, by['a:noise'].balanced);
  assert.match(probeMarkdown(r, 'test'), /\| a \| 2 \|/);
  // One class only in training, or too few labelled images: skipped with the reason.
  const constant = (l: ProbeLabels[]) => l.map((t) => ({ row: t.row, labels: { 'c:const': 1 as const } }));
  const one = linearProbes(x, 5, constant(train), constant(test_));
  assert.equal(one.attributes, []);
  assert.match(one.skipped[0].reason, /every training image has label 1/);
  const few = linearProbes(x, 5, train.slice(0, 5), test_);
  assert.match(few.skipped[0].reason, /5 training and 300 test images labelled, fewer than 10/);
});

test.run();
