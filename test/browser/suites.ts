/**
 * The test files run in the browser, the same files Node runs. SwiftShader (Chromium's software
 * WebGPU on machines without a GPU) measured 0.4-2 GFLOP/s here on 2 shared cores, yet every test
 * of these files fits: about 60 s in all. Should a file grow too slow, `keep` trims it to a
 * representative subset (regular expressions on `suite > test` names; plain uvu `test` names have
 * no suite part) and the rest stays with Node.
 */
export interface BrowserSuite {
  /** The test file, as named under test/. */
  file: string;
  load: () => Promise<unknown>;
  /** Tests kept in the browser; every test of the file when absent. */
  keep?: RegExp[];
}

// Not here yet: test files that read fixtures with node:fs or load models with load-node (clip,
// clip-weights, block, lora, trace, tokenizer, safetensors, image) until they read fixtures
// through ./helpers/fixtures.js; context.test.ts (imports node-gpu for a second device);
// world.test.ts (three tests use Node's Buffer); the data and CLI tests (Node-only by design).
export const SUITES: BrowserSuite[] = [
  { file: 'elementwise.test.ts', load: () => import('../elementwise.test.js') },
  { file: 'reduce.test.ts', load: () => import('../reduce.test.js') },
  { file: 'shape.test.ts', load: () => import('../shape.test.js') },
  { file: 'gather.test.ts', load: () => import('../gather.test.js') },
  { file: 'matmul.test.ts', load: () => import('../matmul.test.js') },
  { file: 'softmax.test.ts', load: () => import('../softmax.test.js') },
  { file: 'layernorm.test.ts', load: () => import('../layernorm.test.js') },
  { file: 'loss.test.ts', load: () => import('../loss.test.js') },
  { file: 'attention.test.ts', load: () => import('../attention.test.js') },
  { file: 'optim.test.ts', load: () => import('../optim.test.js') },
  { file: 'nast-losses.test.ts', load: () => import('../nast-losses.test.js') },
  { file: 'nast-cte.test.ts', load: () => import('../nast-cte.test.js') },
  { file: 'word-tokenizer.test.ts', load: () => import('../word-tokenizer.test.js') },
  { file: 'clip.test.ts', load: () => import('../clip.test.js') },
  { file: 'trace.test.ts', load: () => import('../trace.test.js') },
  { file: 'lora-step.test.ts', load: () => import('../lora-step.test.js') },
  { file: 'autograd-memory.test.ts', load: () => import('../autograd-memory.test.js') },
  { file: 'recompute.test.ts', load: () => import('../recompute.test.js') },
  { file: 'matmul-f16.test.ts', load: () => import('../matmul-f16.test.js') },
  { file: 'paired-stats.test.ts', load: () => import('../paired-stats.test.js') },
  { file: 'default-run-report.test.ts', load: () => import('../default-run-report.test.js') },
];
