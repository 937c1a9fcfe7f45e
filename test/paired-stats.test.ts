import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { incompleteBeta, lnGamma, pairedStats, studentTCdf, studentTQuantile } from '../src/nast/paired-stats.js';

const near = (a: number, b: number, tol: number, what: string) => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

test('lnGamma: factorials and Γ(1/2) = √π', () => {
  near(lnGamma(1), 0, 1e-14, 'ln Γ(1)');
  near(lnGamma(5), Math.log(24), 1e-13, 'ln Γ(5)');
  near(lnGamma(0.5), 0.5 * Math.log(Math.PI), 1e-13, 'ln Γ(1/2)');
  near(lnGamma(0.25), Math.log(3.6256099082219083), 1e-13, 'ln Γ(1/4) (reflection branch)');
});

test('incompleteBeta: closed forms I_x(1, b) = 1 - (1-x)^b and I_x(a, 1) = x^a', () => {
  for (const x of [0.01, 0.3, 0.7, 0.99]) {
    near(incompleteBeta(x, 1, 3), 1 - (1 - x) ** 3, 1e-13, `I_${x}(1,3)`);
    near(incompleteBeta(x, 2.5, 1), x ** 2.5, 1e-13, `I_${x}(2.5,1)`);
  }
  assert.is(incompleteBeta(0, 2, 3), 0);
  assert.is(incompleteBeta(1, 2, 3), 1);
  assert.throws(() => incompleteBeta(1.5, 1, 1), /0 <= x <= 1/);
});

test('studentTCdf: df 1 is the Cauchy distribution, df 2 has a closed form', () => {
  for (const t of [-3, -0.5, 0, 0.7, 4]) {
    near(studentTCdf(t, 1), 0.5 + Math.atan(t) / Math.PI, 1e-13, `Cauchy ${t}`);
    near(studentTCdf(t, 2), 0.5 + t / (2 * Math.sqrt(2 + t * t)), 1e-13, `df 2 at ${t}`);
  }
});

test('studentTQuantile(0.975): matches printed tables for df 1..30 and tends to the normal 1.95996', () => {
  // Standard two-sided 5 % critical values (e.g. NIST/SEMATECH e-Handbook, table 1.3.6.7.2).
  const table: Record<number, number> = { 1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 9: 2.262, 10: 2.228, 20: 2.086, 30: 2.042, 100: 1.984 };
  for (const [df, q] of Object.entries(table)) near(studentTQuantile(0.975, Number(df)), q, 6e-4, `t(0.975, ${df})`);
  // df 2 inverts in closed form: t = (2p - 1) √(2 / (4p(1 - p))).
  near(studentTQuantile(0.975, 2), 0.95 * Math.sqrt(2 / (4 * 0.975 * 0.025)), 1e-9, 't(0.975, 2) closed form');
  near(studentTQuantile(0.975, 1), Math.tan(Math.PI * 0.475), 1e-9, 't(0.975, 1) = tan(0.475π)');
  near(studentTQuantile(0.975, 1e5), 1.959963984540054, 1e-4, 'large df -> normal');
  near(studentTQuantile(0.025, 4), -studentTQuantile(0.975, 4), 1e-12, 'symmetry');
  assert.is(studentTQuantile(0.5, 3), 0);
  assert.throws(() => studentTQuantile(1, 3), /\(0, 1\)/);
  assert.throws(() => studentTQuantile(0.9, 0), /positive/);
});

test('pairedStats: hand-computed interval for diffs [0.1, 0.2, 0.3]', () => {
  const s = pairedStats([0.1, 0.2, 0.3]);
  near(s.mean, 0.2, 1e-15, 'mean');
  near(s.sd!, 0.1, 1e-15, 'sample sd (n - 1)');
  near(s.t975!, 4.3027, 5e-5, 't(0.975, 2)');
  const half = (4.302652729911275 * 0.1) / Math.sqrt(3);
  near(s.ci95![0], 0.2 - half, 1e-9, 'lo');
  near(s.ci95![1], 0.2 + half, 1e-9, 'hi');
  near(s.ci95![0], -0.04842, 1e-5, 'lo by hand: 0.2 - 0.24842');
  assert.is(s.ci95_note, null);
  assert.equal([s.n, s.higher, s.lower, s.tied], [3, 3, 0, 0]);
});

test('pairedStats: one seed gives a mean but no interval, and says why', () => {
  const s = pairedStats([-0.05]);
  assert.equal([s.n, s.mean, s.sd, s.t975, s.ci95], [1, -0.05, null, null, null]);
  assert.match(s.ci95_note ?? '', /one seed/);
  assert.equal([s.higher, s.lower, s.tied], [0, 1, 0]);
});

test('pairedStats: all ties give a zero-width interval at 0, flagged as such', () => {
  const s = pairedStats([0, 0, 1e-14, 0]);
  assert.equal([s.higher, s.lower, s.tied], [0, 0, 4]);
  near(s.mean, 0, 1e-14, 'mean');
  near(s.ci95![1] - s.ci95![0], 0, 1e-13, 'width');
  const exact = pairedStats([0, 0, 0]);
  assert.equal(exact.ci95, [0, 0]);
  assert.match(exact.ci95_note ?? '', /zero width/);
});

test('pairedStats: mixed signs, a non-finite difference and no seeds', () => {
  const s = pairedStats([0.1, -0.2, 0, 0.05]);
  assert.equal([s.higher, s.lower, s.tied], [2, 1, 1]);
  assert.ok(s.ci95![0] < 0 && s.ci95![1] > 0, 'an interval spanning zero');
  const bad = pairedStats([0.1, NaN]);
  assert.equal([bad.ci95, bad.n], [null, 2]);
  assert.match(bad.ci95_note ?? '', /not a finite number/);
  assert.match(pairedStats([]).ci95_note ?? '', /no seeds/);
});

test.run();
