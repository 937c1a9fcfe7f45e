import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  ALL_COLOURS, ALL_SHAPES, BACKGROUND_RGB, CAPTION_TEMPLATE_COUNT, COLOUR_RGB, DEFAULT_SPEC, FULL_SPEC, SHAPE_PLURAL,
  WorldSpecError, absentConditions, generateWorld, objectExtent, renderScene, resolveSpec, shapeMask,
  worldAffirmativeAlternatives, worldConditions, worldVocabulary, type Colour, type Shape, type WorldRecord, type WorldSpec,
} from '../src/data/world/index.js';
import { WordTokenizer } from '../src/models/tokenizer/word.js';

/** What the pixels show, found without the renderer's masks: one entry per connected blob. */
interface SeenObject {
  colour: Colour;
  shape: Shape;
  size: 'small' | 'large';
  side: 'left' | 'right';
  row: 'top' | 'bottom';
  /** Mean pixel coordinates. */
  cx: number;
  cy: number;
}

function colourAt(data: Uint8Array, p: number): Colour | 'background' | 'other' {
  const rgb = [data[3 * p], data[3 * p + 1], data[3 * p + 2]];
  if (rgb.every((v, i) => v === BACKGROUND_RGB[i])) return 'background';
  for (const c of ALL_COLOURS) if (rgb.every((v, i) => v === COLOUR_RGB[c][i])) return c;
  return 'other';
}

/** Flood-fills each same-colour 4-connected blob and names its shape by matching every shape mask. */
function analyse(record: WorldRecord): SeenObject[] {
  const img = record.pixels!;
  const n = img.width;
  const label = new Int32Array(n * n).fill(-1);
  const seen: SeenObject[] = [];
  for (let start = 0; start < n * n; start++) {
    const colour = colourAt(img.data, start);
    assert.ok(colour !== 'other', `${record.id}: pixel ${start} has a colour outside the palette`);
    if (colour === 'background' || label[start] >= 0) continue;
    const stack = [start];
    const pixels: number[] = [];
    label[start] = seen.length;
    while (stack.length) {
      const p = stack.pop()!;
      pixels.push(p);
      const x = p % n;
      const y = (p - x) / n;
      for (const [dx, dy] of [[1, 0], [-1, 0], [0, 1], [0, -1]]) {
        const qx = x + dx;
        const qy = y + dy;
        if (qx < 0 || qy < 0 || qx >= n || qy >= n) continue;
        const q = qy * n + qx;
        if (label[q] < 0 && colourAt(img.data, q) === colour) {
          label[q] = seen.length;
          stack.push(q);
        }
      }
    }
    const xs = pixels.map((p) => p % n);
    const ys = pixels.map((p) => Math.floor(p / n));
    const x0 = Math.min(...xs);
    const y0 = Math.min(...ys);
    const w = Math.max(...xs) - x0 + 1;
    const h = Math.max(...ys) - y0 + 1;
    assert.is(w, h, `${record.id}: a ${colour} blob is not in a square box`);
    const size = w === objectExtent(n, 'small') ? 'small' : w === objectExtent(n, 'large') ? 'large' : undefined;
    assert.ok(size, `${record.id}: a ${colour} blob is ${w} px wide, neither object size`);
    const blob = new Uint8Array(w * w);
    for (const p of pixels) blob[(Math.floor(p / n) - y0) * w + (p % n) - x0] = 1;
    const shapes = ALL_SHAPES.filter((s) => shapeMask(s, w).every((v, i) => v === blob[i]));
    assert.is(shapes.length, 1, `${record.id}: a ${colour} blob matches shapes ${JSON.stringify(shapes)}`);
    const cx = xs.reduce((a, b) => a + b, 0) / xs.length + 0.5;
    const cy = ys.reduce((a, b) => a + b, 0) / ys.length + 0.5;
    seen.push({ colour, shape: shapes[0], size: size!, side: cx < n / 2 ? 'left' : 'right', row: cy < n / 2 ? 'top' : 'bottom', cx, cy });
  }
  return seen;
}

const key = (condition: string, location?: string, severity?: string) => `${condition}|${location}|${severity}`;

/** Facts and pixels agree: drawn objects are exactly the present facts; absent ones are not drawn. */
function checkAgainstPixels(record: WorldRecord, spec: WorldSpec): void {
  const seen = analyse(record);
  const loc = (o: SeenObject) => (spec.quadrants ? `${o.row} ${o.side}` : o.side);
  const drawn = seen.map((o) => key(`${o.colour} ${o.shape}`, loc(o), o.size)).sort();
  const present = record.facts.filter((f) => f.existence === 'present');
  assert.equal(present.map((f) => key(f.condition, f.location, f.severity)).sort(), drawn, `${record.id}: present facts vs pixels`);
  const drawnKinds = new Set(seen.map((o) => `${o.colour} ${o.shape}`));
  for (const f of record.facts.filter((f) => f.existence === 'absent')) {
    assert.not.ok(drawnKinds.has(f.condition), `${record.id}: absent ${f.condition} is drawn`);
    assert.is(f.location, undefined);
    assert.is(f.severity, undefined);
  }
  // Absences not listed are absences too: nothing outside the present facts is drawn.
  for (const c of absentConditions(record.scene, spec)) assert.not.ok(drawnKinds.has(c), `${record.id}: ${c} drawn`);
}

test('the same seed renders byte-identical images, facts and captions', () => {
  const a = generateWorld({ seed: 1234, count: 40 });
  const b = generateWorld({ seed: 1234, count: 40 });
  assert.equal(a, b);
  for (let i = 0; i < a.length; i++) assert.ok(Buffer.from(a[i].pixels!.data).equals(Buffer.from(b[i].pixels!.data)));
  // A record depends only on (seed, index), not on how many records are made or where the run starts.
  const slice = generateWorld({ seed: 1234, count: 5, start: 30 });
  assert.equal(slice, a.slice(30, 35));
});

test('a different seed gives a different world', () => {
  const a = generateWorld({ seed: 1, count: 30 });
  const b = generateWorld({ seed: 2, count: 30 });
  let samePixels = 0;
  let sameFacts = 0;
  for (let i = 0; i < a.length; i++) {
    if (Buffer.from(a[i].pixels!.data).equals(Buffer.from(b[i].pixels!.data))) samePixels++;
    if (JSON.stringify(a[i].facts) === JSON.stringify(b[i].facts)) sameFacts++;
  }
  assert.ok(samePixels <= 1, `${samePixels}/30 images equal across seeds`);
  assert.ok(sameFacts <= 1, `${sameFacts}/30 fact lists equal across seeds`);
  // Seeds above 2^32 are not folded onto small ones.
  const big = generateWorld({ seed: 2 ** 32 + 1, count: 30 });
  assert.not.equal(big.map((r) => r.facts), a.map((r) => r.facts));
});

/** FNV-1a of record 0 of seed 7 at 32 px. */
const GOLDEN_PIXEL_HASH = 2588552877;

test('a known record stays the same (a change here changes every dataset made from the world)', () => {
  const [r] = generateWorld({ seed: 7, count: 1 });
  assert.equal(r.facts, [
    { condition: 'green triangle', existence: 'present', location: 'left', severity: 'small' },
    { condition: 'green square', existence: 'present', location: 'right', severity: 'small' },
    { condition: 'red circle', existence: 'present', location: 'right', severity: 'small' },
    { condition: 'yellow square', existence: 'absent' },
    { condition: 'yellow triangle', existence: 'absent' },
  ]);
  let h = 0x811c9dc5;
  for (const v of r.pixels!.data) h = Math.imul(h ^ v, 0x01000193) >>> 0;
  assert.is(h, GOLDEN_PIXEL_HASH);
  assert.is(r.captions[0], 'there is a small green triangle on the left, a small green square on the right and a small red circle on the right.');
});
for (const size of [24, 32, 48, 64]) {
  test(`facts agree with the pixels at ${size} px`, () => {
    const records = generateWorld({ seed: 99 + size, count: 150, size });
    for (const r of records) {
      assert.is(r.pixels!.width, size);
      assert.is(r.pixels!.height, size);
      assert.is(r.pixels!.channels, 3);
      assert.is(r.pixels!.data.length, size * size * 3);
      checkAgainstPixels(r, DEFAULT_SPEC);
    }
  });
}

test('facts agree with the pixels for the full vocabulary with quadrants and four objects', () => {
  const spec = FULL_SPEC;
  const records = generateWorld({ seed: 5, count: 200, size: 40, spec, minObjects: 2, maxObjects: 4, absentPerImage: 5 });
  const counts = new Set<number>();
  for (const r of records) {
    checkAgainstPixels(r, spec);
    counts.add(r.scene.objects.length);
    assert.is(r.facts.filter((f) => f.existence === 'absent').length, 5);
  }
  assert.equal([...counts].sort(), [2, 3, 4]);
});

test('locations: a left object lies in the left half, a top object in the top half', () => {
  const records = generateWorld({ seed: 11, count: 200, spec: { quadrants: true } });
  let left = 0;
  let right = 0;
  for (const r of records) {
    const seen = analyse(r);
    for (const f of r.facts.filter((f) => f.existence === 'present')) {
      const o = seen.find((s) => `${s.colour} ${s.shape}` === f.condition)!;
      const [row, side] = f.location!.split(' ');
      if (side === 'left') {
        left++;
        assert.ok(o.cx < r.scene.size / 2, `${r.id}: ${f.condition} is 'left' but its centroid x is ${o.cx}`);
      } else {
        right++;
        assert.ok(o.cx > r.scene.size / 2, `${r.id}: ${f.condition} is 'right' but its centroid x is ${o.cx}`);
      }
      assert.ok(row === 'top' ? o.cy < r.scene.size / 2 : o.cy > r.scene.size / 2, `${r.id}: ${f.condition} row`);
    }
  }
  assert.ok(left > 100 && right > 100, `left ${left}, right ${right}`);
});

test('objects keep a background gap, so none touches or overlaps another', () => {
  for (const r of generateWorld({ seed: 3, count: 200, render: false, maxObjects: 4 })) {
    const cell = r.scene.size / 2;
    for (const o of r.scene.objects) {
      assert.ok(o.x >= o.column * cell + 1 && o.x + o.extent <= (o.column + 1) * cell - 1, `${r.id}: x out of its cell`);
      assert.ok(o.y >= o.row * cell + 1 && o.y + o.extent <= (o.row + 1) * cell - 1, `${r.id}: y out of its cell`);
    }
    assert.is(new Set(r.scene.objects.map((o) => o.column * 2 + o.row)).size, r.scene.objects.length);
    assert.is(r.pixels, undefined);
  }
});

test('facts: one to three objects, distinct conditions, sampled absences with near misses', () => {
  const records = generateWorld({ seed: 21, count: 400 });
  const counts = new Map<number, number>();
  const presentConds = new Set<string>();
  const severities = new Set<string>();
  let nearMiss = 0;
  let absences = 0;
  for (const r of records) {
    const present = r.facts.filter((f) => f.existence === 'present');
    const absent = r.facts.filter((f) => f.existence === 'absent');
    counts.set(present.length, (counts.get(present.length) ?? 0) + 1);
    assert.is(new Set(r.facts.map((f) => f.condition)).size, r.facts.length, `${r.id}: repeated condition`);
    assert.is(absent.length, 2);
    // Present facts come first, in reading order.
    assert.equal(r.facts.slice(0, present.length), present);
    for (const f of present) {
      presentConds.add(f.condition);
      severities.add(f.severity!);
      assert.ok(worldConditions().includes(f.condition));
    }
    for (const f of absent) {
      absences++;
      const [c, s] = f.condition.split(' ');
      if (present.some((p) => p.condition.startsWith(c + ' ') || p.condition.endsWith(' ' + s))) nearMiss++;
    }
    assert.is(r.patient, r.id);
    assert.is(r.captions.length, CAPTION_TEMPLATE_COUNT);
  }
  assert.equal([...counts.keys()].sort(), [1, 2, 3]);
  for (const n of [1, 2, 3]) assert.ok(counts.get(n)! > 80, `count ${n}: ${counts.get(n)}`);
  assert.is(presentConds.size, 16);
  assert.equal([...severities].sort(), ['large', 'small']);
  assert.ok(nearMiss / absences > 0.5, `near misses ${nearMiss}/${absences}`);
  assert.equal(new Set(records.map((r) => r.id)).size, records.length);
});

test('captions name every drawn object with its size and place, and nothing else', () => {
  const spec = resolveSpec({ quadrants: true });
  for (const r of generateWorld({ seed: 8, count: 100, spec })) {
    const present = r.facts.filter((f) => f.existence === 'present');
    for (const c of r.captions) {
      for (const f of present) {
        const [colour, shape] = f.condition.split(' ');
        assert.ok(
          c.includes(`${f.severity} ${f.condition} in the ${f.location}`) || c.includes(`${f.severity} ${f.location} ${colour} ${shape}`),
          `${r.id}: caption ${JSON.stringify(c)} misses ${f.condition}`,
        );
      }
      for (const a of absentConditions(r.scene, spec)) assert.not.ok(c.includes(a), `${r.id}: caption ${JSON.stringify(c)} names absent ${a}`);
    }
  }
});

test('every word the world and its records write is in the tokenizer vocabulary', () => {
  const tok = new WordTokenizer(worldVocabulary());
  const check = (text: string, where: string) => assert.equal(tok.unknownWords(text), [], `${where}: ${JSON.stringify(text)}`);
  for (const spec of [DEFAULT_SPEC, FULL_SPEC]) {
    for (const r of generateWorld({ seed: 4, count: 100, spec })) {
      r.captions.forEach((c) => check(c, r.id));
      for (const f of [...r.facts, ...r.propertyFacts]) check(`${f.condition} ${f.location ?? ''} ${f.severity ?? ''}`, r.id);
    }
    for (const [c, alt] of worldAffirmativeAlternatives(spec)) check(`${c} ${alt}`, 'alternatives');
  }
  for (const s of ALL_SHAPES) check(SHAPE_PLURAL[s], 'plurals');
  // The words the builders' templates need, including the probing modifier.
  check('This image does not include a red square, but it features a blue circle.', 'NegBench');
  check('There is severe red square. There is no red square.', 'probing');
  check('Which of the following best describes the image? Free of crosses, lacking evidence of squares, without circles.', 'MCQ');
  // The vocabulary is sorted and unique, and words absent from it really are unknown.
  const vocab = worldVocabulary();
  assert.equal(vocab, [...new Set(vocab)].sort());
  assert.equal(tok.unknownWords('a red zebra'), ['zebra']);
});

test('scene properties match the pixels and their affirmative alternatives are exact', () => {
  for (const spec of [DEFAULT_SPEC, FULL_SPEC]) {
    const alternatives = worldAffirmativeAlternatives(spec);
    for (const r of generateWorld({ seed: 17, count: 200, spec, maxObjects: 4 })) {
      const seen = analyse(r);
      assert.is(r.propertyFacts.length, alternatives.size);
      for (const f of r.propertyFacts) {
        const alt = alternatives.get(f.condition)!;
        assert.ok(alt, `no alternative for ${f.condition}`);
        // The property, read from the pixels.
        const words = f.condition.split(' ');
        const has = seen.some((o) =>
          f.condition === 'large object' ? o.size === 'large'
          : f.condition === 'small object' ? o.size === 'small'
          : f.condition === 'object on the left' ? o.side === 'left'
          : f.condition === 'object on the right' ? o.side === 'right'
          : f.condition === 'object at the top' ? o.row === 'top'
          : f.condition === 'object at the bottom' ? o.row === 'bottom'
          : words[1] === 'object' ? o.colour === words[0]
          : o.shape === f.condition);
        assert.is(f.existence, has ? 'present' : 'absent', `${r.id}: ${f.condition}`);
        // The alternative, read literally: "only <list> objects" or "objects only <place>".
        const list = alt.replace(/^only |^objects only /, '').replace(/ objects$/, '').split(/, | or /);
        const altTrue = seen.every((o) =>
          alt.startsWith('objects only on the') ? o.side === list[0].replace('on the ', '')
          : alt.startsWith('objects only at the') ? o.row === list[0].replace('at the ', '')
          : list.includes(o.colour) || list.includes(SHAPE_PLURAL[o.shape]) || list.includes(o.size));
        assert.is(altTrue, !has, `${r.id}: "${alt}" must hold exactly when ${f.condition} is absent`);
      }
    }
  }
});

test('options are checked with clear errors', () => {
  assert.throws(() => generateWorld({ seed: -1, count: 1 }), /seed must be a non-negative safe integer/);
  assert.throws(() => generateWorld({ seed: 1.5, count: 1 }), /seed/);
  assert.throws(() => generateWorld({ seed: 1, count: -2 }), /count must be/);
  assert.throws(() => generateWorld({ seed: 1, count: 1, size: 33 }), /size must be an even integer/);
  assert.throws(() => generateWorld({ seed: 1, count: 1, size: 16 }), /size must be an even integer in \[24/);
  assert.throws(() => generateWorld({ seed: 1, count: 1, maxObjects: 5 }), /maxObjects/);
  assert.throws(() => generateWorld({ seed: 1, count: 1, minObjects: 0 }), /minObjects/);
  assert.throws(() => generateWorld({ seed: 1, count: 1, absentPerImage: -1 }), /absentPerImage/);
  assert.throws(() => generateWorld({ seed: 1, count: 1, spec: { shapes: ['square', 'hexagon' as Shape] } }), (e: Error) =>
    e instanceof WorldSpecError && /shapes: unknown entry "hexagon"/.test(e.message));
  assert.throws(() => resolveSpec({ colours: ['red', 'red'] }), /colours: duplicate entry "red"/);
  assert.throws(() => resolveSpec({ colours: ['red'] }), /colours: expected at least 2/);
});

test('shape masks are distinct at every extent the supported sizes use', () => {
  for (let size = 24; size <= 128; size += 2) {
    for (const s of ['small', 'large'] as const) {
      const e = objectExtent(size, s);
      assert.ok(e % 2 === 1 && e <= size / 2 - 2, `extent ${e} at size ${size}`);
      const masks = ALL_SHAPES.map((sh) => Array.from(shapeMask(sh, e)).join(''));
      assert.is(new Set(masks).size, ALL_SHAPES.length, `shapes collide at extent ${e}`);
      for (const m of masks) assert.ok(m.includes('1'));
    }
    assert.ok(objectExtent(size, 'small') < objectExtent(size, 'large'));
  }
});

test('renderScene re-renders a record from its scene', () => {
  const [withPixels] = generateWorld({ seed: 42, count: 1 });
  const [without] = generateWorld({ seed: 42, count: 1, render: false });
  assert.equal(without.facts, withPixels.facts);
  assert.ok(Buffer.from(renderScene(without.scene).data).equals(Buffer.from(withPixels.pixels!.data)));
});

test.run();
