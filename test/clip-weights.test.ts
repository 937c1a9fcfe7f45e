import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { parseHfConfig } from '../src/models/clip-config.js';
import { expectedHfShapes, hfWeights, type WeightSource } from '../src/models/clip-weights.js';

const FIX = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures', 'clip', 'tiny-hf');
const cfg = parseHfConfig(JSON.parse(readFileSync(join(FIX, 'config.json'), 'utf8')));

function source(shapes: Map<string, number[]>): WeightSource {
  return {
    source: 'fake.safetensors',
    keys: () => [...shapes.keys()],
    shape: (k) => shapes.get(k)!,
    read: (k) => new Float32Array(shapes.get(k)!.reduce((a, b) => a * b, 1)),
  };
}

test('a complete HF checkpoint validates', () => {
  assert.ok(hfWeights(source(expectedHfShapes(cfg)), cfg));
});

test('a missing key is named with the file', () => {
  const s = expectedHfShapes(cfg);
  s.delete('text_model.encoder.layers.1.mlp.fc2.bias');
  assert.throws(() => hfWeights(source(s), cfg), /fake\.safetensors: text_model\.encoder\.layers\.1\.mlp\.fc2\.bias: missing/);
});

test('an unexpected key is named', () => {
  const s = expectedHfShapes(cfg);
  s.set('text_model.encoder.layers.2.mlp.fc2.bias', [16]);
  assert.throws(() => hfWeights(source(s), cfg), /layers\.2\.mlp\.fc2\.bias: unexpected key/);
});

test('a shape that disagrees with the config is named with both shapes', () => {
  const s = expectedHfShapes(cfg);
  s.set('vision_model.embeddings.position_embedding.weight', [16, 24]);
  assert.throws(() => hfWeights(source(s), cfg), /position_embedding\.weight: shape \[16, 24\] disagrees with the config \(expected \[17, 24\]\)/);
});

test('position_ids buffers are ignored', () => {
  const s = expectedHfShapes(cfg);
  s.set('text_model.embeddings.position_ids', [1, 77]);
  assert.ok(hfWeights(source(s), cfg));
});

test.run();
