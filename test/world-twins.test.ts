import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  DEFAULT_SPEC, affirmativeCaptions, dropObject, generateWorld, mirrorScene, objectCondition, objectSide, partialCaptions,
  recolourObject, renderScene, reshapeObject, resizeObject, sceneAttributes, twinScene, TWIN_KINDS, type WorldScene,
} from '../src/data/world/index.js';
import { WorldRng } from '../src/data/world/rng.js';
import { hasNegationCue } from '../src/data/metrics.js';

const scenes = generateWorld({ seed: 11, count: 200 }).map((r) => r.scene);

/** Every object inside its own cell with a one-pixel margin (scene.ts's layout rule). */
function assertLaidOut(s: WorldScene, what: string): void {
  const cell = s.size / 2;
  for (const o of s.objects) {
    assert.ok(o.x >= o.column * cell + 1 && o.x + o.extent <= (o.column + 1) * cell - 1, `${what}: x inside its cell`);
    assert.ok(o.y >= o.row * cell + 1 && o.y + o.extent <= (o.row + 1) * cell - 1, `${what}: y inside its cell`);
  }
  const order = s.objects.map((o) => o.row * 2 + o.column);
  assert.equal(order, [...order].sort((a, b) => a - b), `${what}: reading order`);
  assert.is(new Set(s.objects.map(objectCondition)).size, s.objects.length, `${what}: distinct kinds`);
}

test('mirrorScene: the exact mirror image, every object on the other side', () => {
  for (const s of scenes.slice(0, 50)) {
    const m = mirrorScene(s);
    assertLaidOut(m, 'mirror');
    const a = renderScene(s);
    const b = renderScene(m);
    for (let y = 0; y < s.size; y++) {
      for (let x = 0; x < s.size; x++) {
        for (let c = 0; c < 3; c++) assert.is(b.data[3 * (y * s.size + x) + c], a.data[3 * (y * s.size + s.size - 1 - x) + c]);
      }
    }
    assert.equal(mirrorScene(m), s, 'mirroring twice gives the scene back');
  }
});

test('resize, recolour, reshape, drop: one change, laid out, distinct kinds; null where impossible', () => {
  const rng = new WorldRng(5);
  for (const s of scenes.slice(0, 80)) {
    const r = resizeObject(s, 0);
    assertLaidOut(r, 'resize');
    assert.not.equal(r.objects[0].size, s.objects[0].size);
    assert.equal(r.objects.slice(1), s.objects.slice(1));
    const c = recolourObject(s, 0, DEFAULT_SPEC, rng)!;
    assertLaidOut(c, 'recolour');
    assert.not.equal(c.objects[0].colour, s.objects[0].colour);
    assert.is(c.objects[0].shape, s.objects[0].shape);
    const h = reshapeObject(s, 0, DEFAULT_SPEC, rng)!;
    assertLaidOut(h, 'reshape');
    assert.not.equal(h.objects[0].shape, s.objects[0].shape);
    const d = dropObject(s, 0);
    if (s.objects.length === 1) assert.is(d, null, 'every image keeps an object');
    else assert.equal(d!.objects, s.objects.slice(1));
    for (const kind of TWIN_KINDS) {
      const t = twinScene(s, kind, DEFAULT_SPEC, rng);
      if (t) assert.not.equal(affirmativeCaptions(t, DEFAULT_SPEC)[0], affirmativeCaptions(s, DEFAULT_SPEC)[0], `${kind} twin reads differently`);
    }
  }
  const two = { shapes: ['square', 'circle'] as const, colours: ['red', 'green'] as const, quadrants: false };
  const full: WorldScene = {
    size: 32,
    objects: [
      { shape: 'square', colour: 'red', size: 'small', column: 0, row: 0, x: 1, y: 1, extent: 7 },
      { shape: 'square', colour: 'green', size: 'small', column: 1, row: 0, x: 17, y: 1, extent: 7 },
      { shape: 'circle', colour: 'red', size: 'small', column: 0, row: 1, x: 1, y: 17, extent: 7 },
      { shape: 'circle', colour: 'green', size: 'small', column: 1, row: 1, x: 17, y: 17, extent: 7 },
    ],
  };
  assert.is(recolourObject(full, 0, two, rng), null, 'no free colour for a red square');
  assert.is(reshapeObject(full, 0, two, rng), null, 'no free shape either');
});

test('partialCaptions: affirmative, one attribute left out each', () => {
  const s = scenes.find((x) => x.objects.length === 2)!;
  const [kinds, sized, located] = partialCaptions(s, DEFAULT_SPEC);
  for (const c of [kinds, sized, located]) assert.not.ok(hasNegationCue(c));
  const [a, b] = s.objects;
  assert.is(kinds, `this image features a ${a.colour} ${a.shape} and a ${b.colour} ${b.shape}.`);
  assert.ok(sized.includes(`a ${a.size} ${a.colour} ${a.shape}`) && !/left|right/.test(sized));
  assert.ok(located.includes(`on the ${objectSide(a)}`) && !/small|large/.test(located));
});

test('sceneAttributes: presence of every kind, size and side of each drawn one', () => {
  const s = scenes[3];
  const at = sceneAttributes(s, DEFAULT_SPEC);
  assert.is(Object.keys(at).filter((k) => k.startsWith('presence:')).length, 16);
  for (const o of s.objects) {
    const c = objectCondition(o);
    assert.is(at[`presence:${c}`], 1);
    assert.is(at[`size:${c}`], o.size === 'large' ? 1 : 0);
    assert.is(at[`side:${c}`], objectSide(o) === 'left' ? 1 : 0);
  }
  assert.is(Object.values(at).length, 16 + 2 * s.objects.length, 'no size or side label for an undrawn kind');
  assert.ok(Object.entries(at).filter(([k]) => k.startsWith('presence:')).filter(([, v]) => v === 1).length === s.objects.length);
});

test.run();
