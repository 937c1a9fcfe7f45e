import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mulberry32, mulberry32U32 } from '../src/engine/prng.js';
import { WorldRng } from '../src/data/world/rng.js';
import { loraInitA } from '../src/models/lora.js';

// The stream every seeded draw of the project comes from: LoRA A's initialisation and the
// miniature world's images change if it does (models/tiny-world and the default run's table
// were made with it).
test('mulberry32: the pinned stream, in [0, 1) and as 32-bit integers', () => {
  const u = mulberry32U32(0);
  assert.equal([u(), u(), u()], [1144304738, 1416247, 958946056]);
  const v = mulberry32U32(123456789);
  assert.equal([v(), v(), v()], [1107202814, 4169434471, 3372958138]);
  const f = mulberry32(0);
  assert.is(f(), 1144304738 / 4294967296);
  const w = new WorldRng(0);
  assert.equal([w.nextU32(), w.nextU32()], [1144304738, 1416247]);
});

test('loraInitA draws U(-1/sqrt(in), 1/sqrt(in)) per module, independent of other modules', () => {
  const a = loraInitA(0, 'text.0.q_proj', 2, 16);
  const b = loraInitA(0, 'text.0.q_proj', 2, 16);
  const c = loraInitA(0, 'text.0.k_proj', 2, 16);
  assert.equal([...a], [...b]);
  assert.not.equal([...a], [...c]);
  assert.ok(a.every((x) => Math.abs(x) <= 0.25));
});

test.run();
