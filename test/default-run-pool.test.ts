import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pairedDifference, pool } from '../src/nast/default-run-node.js';

test('pool: results in task order, at most n running at once', async () => {
  let running = 0;
  let most = 0;
  const tasks = [30, 5, 20, 1, 10].map((ms, i) => async () => {
    running++;
    most = Math.max(most, running);
    await new Promise((r) => setTimeout(r, ms));
    running--;
    return i;
  });
  assert.equal(await pool(2, tasks), [0, 1, 2, 3, 4]);
  assert.is(most, 2);
  assert.equal(await pool(8, tasks.slice(0, 2)), [0, 1]);
});

test('pairedDifference: per-seed NAST - uniform, wins, ties and losses', () => {
  const r = pairedDifference([0.5, 0.4, 0.3], [0.4, 0.4, 0.35]);
  assert.ok(Math.abs(r.diffs[0] - 0.1) < 1e-12 && r.diffs[1] === 0 && Math.abs(r.diffs[2] + 0.05) < 1e-12);
  assert.equal([r.wins, r.ties, r.losses], [1, 1, 1]);
  assert.ok(Math.abs(r.mean - 0.05 / 3) < 1e-12);
  assert.throws(() => pairedDifference([1], [1, 2]), /1 NAST and 2 uniform values/);
});

test.run();
