/**
 * The adapter as the demo page downloads and loads it (browser-safe, bytes only): one zip of the
 * PEFT files, equal to what saveLora writes; loading picked files or a zip, with errors naming
 * the file; and the bounds train.js and the page share.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { strToU8, unzipSync, zipSync } from 'fflate';
import { gpu } from './helpers/gpu.js';
import { loadFixtureClip } from './helpers/fixture-models.js';
import { noGrad } from '../src/engine/index.js';
import { attachLora } from '../src/models/lora.js';
import { ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME, adapterFiles, adapterZip, loadLoraFromPicked } from '../src/models/peft.js';
import { saveLora } from '../src/models/peft-node.js';
import { buildCteReport } from '../src/nast/cte.js';
import { MAX_LR, checkLr, cteLayerScales } from '../src/nast/train-bounds.js';

test('adapterZip holds exactly what saveLora writes; loading it back gives the same text embeddings', async () => {
  const ctx = await gpu();
  const model = await loadFixtureClip(ctx, 'clip/tiny-hf');
  const ids = Int32Array.from({ length: 2 * model.config.text.maxPositions }, (_, i) => (i % model.config.text.maxPositions === 5 ? model.config.text.eosTokenId ?? 2 : 1 + (i % 7)));
  const base = await noGrad(() => model.encodeText(ids, 2).embeds).toArray();
  const set = attachLora(model, { rank: 4, alpha: 8, seed: 5 });
  // Non-zero B so the adapter changes the embeddings.
  for (const m of set.modules) ctx.upload(m.branch.b.range('test'), new Uint8Array(Float32Array.from({ length: m.branch.b.size }, (_, i) => Math.sin(i + 1) * 0.05).buffer));
  const before = await noGrad(() => model.encodeText(ids, 2).embeds).toArray();
  assert.ok(before.some((v, i) => Math.abs(v - base[i]) > 1e-4), 'the adapter changes the embeddings');
  const dir = mkdtempSync(join(tmpdir(), 'negclip-adapter-zip-'));
  await saveLora(dir, set, { baseModel: 'tiny' });
  const zip = unzipSync(await adapterZip(set, { baseModel: 'tiny' }));
  assert.equal(Object.keys(zip).sort(), [ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME].sort());
  for (const name of [ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME]) {
    assert.ok(Buffer.from(zip[name]).equals(readFileSync(join(dir, name))), `${name} in the zip equals saveLora's file`);
  }
  const bytes = await adapterZip(set);
  set.dispose();
  const loaded = loadLoraFromPicked(model, new Map([['adapter.zip', bytes]]));
  assert.equal(Array.from(await noGrad(() => model.encodeText(ids, 2).embeds).toArray()), Array.from(before));
  loaded.dispose();
  // The two files picked without a zip, in a folder, load the same way.
  const f = await (async () => {
    const s = attachLora(model, { rank: 4, alpha: 8, seed: 5 });
    const out = await adapterFiles(s);
    s.dispose();
    return out;
  })();
  loadLoraFromPicked(model, new Map([[`run/${ADAPTER_CONFIG_NAME}`, strToU8(f.config)], [`run/${ADAPTER_WEIGHTS_NAME}`, f.weights]])).dispose();
  rmSync(dir, { recursive: true, force: true });
  model.dispose();
});

test('loadLoraFromPicked: errors name the zip or the files, and the model keeps no half-attached adapter', async () => {
  const ctx = await gpu();
  const model = await loadFixtureClip(ctx, 'clip/tiny-hf');
  const set = attachLora(model, { rank: 2, alpha: 4, seed: 1 });
  const f = await adapterFiles(set);
  set.dispose();
  const pick = (m: Record<string, Uint8Array>) => () => loadLoraFromPicked(model, new Map(Object.entries(m)));
  assert.throws(pick({ 'a.zip': zipSync({ [ADAPTER_WEIGHTS_NAME]: f.weights }) }), /a\.zip: has no adapter_config\.json/);
  assert.throws(pick({ 'a.zip': zipSync({ [ADAPTER_CONFIG_NAME]: strToU8(f.config), 'adapter_model.bin': new Uint8Array(4) }) }),
    /a\.zip: has a\.zip\/adapter_model\.bin, a pickled PyTorch file, which is not read/);
  assert.throws(pick({ 'a.zip': new Uint8Array([1, 2, 3]) }), /a\.zip: is not a readable zip/);
  assert.throws(pick({ 'a.zip': zipSync({}), 'b.zip': zipSync({}) }), /pick one adapter zip/);
  assert.throws(pick({ [ADAPTER_CONFIG_NAME]: strToU8(f.config) }), /the picked files: has no adapter_model\.safetensors/);
  assert.throws(pick({ [ADAPTER_CONFIG_NAME]: strToU8('{'), [ADAPTER_WEIGHTS_NAME]: f.weights }), /adapter_config\.json.*not valid JSON/);
  // After every failure a fresh adapter still attaches: nothing was left on the model.
  attachLora(model, { rank: 2 }).dispose();
  model.dispose();
});

test('the learning-rate bound and the CTE scales train.js and the page share', () => {
  assert.is(checkLr(3e-3), 3e-3);
  assert.is(checkLr(MAX_LR), MAX_LR);
  for (const bad of [0, -1e-3, 1, MAX_LR * 1.01, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(() => checkLr(bad, 'lr'), new RegExp(`lr: must be greater than 0 and at most ${MAX_LR}, got ${bad}`));
  }
  const pair = (d: number) => ({ image: 'x', caption: 'a b', foil: 'a c', idsCaption: [1, 2, 9], idsFoil: [1, 3, 9], sCorr: 1, sFoil: 1 - d, sLp: [[1, 1, 1], [1, 1 - d / 2, 1], [1, 1, 1]] });
  const report = buildCteReport([pair(0.5)], { layers: 2, eotId: 9, bootstrap: { resamples: 0 } });
  assert.equal(cteLayerScales(report, 2, 1, 'cte.json'), [1, 0]);
  assert.throws(() => cteLayerScales(report, 12, 1, 'my/cte.json'), /my\/cte\.json: traced a text encoder of 2 layers, the model has 12/);
  const flat = { ...report, alpha: [0, 0] };
  assert.throws(() => cteLayerScales(flat, 2, 1, 'cte.json'), /cte\.json: alpha is 0 for every layer/);
});

test.run();
