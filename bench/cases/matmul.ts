import type { GpuContext } from '../../src/engine/context.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { fill, linear, matmul, matmulSpecFor, matmulVariantName, setMatmulVariant } from '../../src/engine/ops/index.js';
import { MATMUL_FIELDS, matmulKernel, matmulWorkgroups } from '../../src/kernels/matmul.js';
import { noGrad } from '../../src/engine/autograd.js';
import type { BenchCase } from '../case.js';

/**
 * The runner calls run() then waits for the GPU, back to back, so the shortest gap between
 * two run() calls is the best iteration time it measured: it lets one row's note quote
 * another row's result.
 */
class Stopwatch {
  private last = 0;
  best = Infinity;
  tick(): void {
    const now = performance.now();
    if (this.last > 0) this.best = Math.min(this.best, now - this.last);
    this.last = now;
  }
}

const gflops = (flops: number, ms: number) => flops / (ms * 1e6);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Best GPU time of the bare kernel over `reps` dispatches, from timestamp queries (on lavapipe
 * they read the CPU clock), with the JS thread asleep meanwhile: while a completion promise is
 * pending, dawn.node polls on the JS thread and takes one of the cores lavapipe computes on,
 * which the runner's figure includes. Null without the timestamp-query feature.
 */
async function kernelOnlyMs(ctx: GpuContext, M: number, N: number, K: number, reps = 5): Promise<number | null> {
  if (!ctx.hasFeature('timestamp-query')) return null;
  const dev = ctx.device;
  const spec = matmulSpecFor(ctx, false, false, M, N, K);
  const kernel = matmulKernel(spec);
  const module = dev.createShaderModule({ code: kernel.wgsl });
  const pipeline = dev.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const made: GPUBuffer[] = [];
  const buf = (size: number, usage: number) => {
    const b = dev.createBuffer({ size: Math.max(16, size), usage });
    made.push(b);
    return b;
  };
  const storage = (floats: number) => buf(floats * 4, GPUBufferUsage.STORAGE);
  const uniforms = buf(MATMUL_FIELDS.length * 4, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
  dev.queue.writeBuffer(uniforms, 0, new Uint32Array([M, N, K, M * K, K * N, M * N, 0, 0, 0]));
  const bound = [uniforms, storage(M * K), storage(K * N), storage(4), storage(M * N), storage(4)];
  const bindGroup = dev.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: bound.map((buffer, binding) => ({ binding, resource: { buffer } })),
  });
  const querySet = dev.createQuerySet({ type: 'timestamp', count: 2 * reps });
  const resolved = buf(16 * reps, GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC);
  const readback = buf(16 * reps, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
  const enc = dev.createCommandEncoder();
  // Pass 0 is a warm-up (the JIT compiles the shader at its first dispatch).
  for (let i = 0; i <= reps; i++) {
    const timestampWrites = i === 0 ? undefined : { querySet, beginningOfPassWriteIndex: 2 * i - 2, endOfPassWriteIndex: 2 * i - 1 };
    const pass = enc.beginComputePass({ timestampWrites });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(...matmulWorkgroups(spec, { M, N, K, batch: 1 }));
    pass.end();
  }
  enc.resolveQuerySet(querySet, 0, 2 * reps, resolved, 0);
  enc.copyBufferToBuffer(resolved, 0, readback, 0, 16 * reps);
  ctx.flush();
  dev.queue.submit([enc.finish()]);
  // Sleep through the work as if it ran at 10 GFLOP/s (plus the JIT), then collect.
  await sleep(1000 + ((2 * M * N * K) / 1e7) * (reps + 1));
  await readback.mapAsync(GPUMapMode.READ);
  const t = new BigUint64Array(readback.getMappedRange().slice(0));
  readback.unmap();
  let best = Infinity;
  for (let i = 0; i < reps; i++) best = Math.min(best, Number(t[2 * i + 1] - t[2 * i]) / 1e6);
  querySet.destroy();
  for (const b of made) b.destroy();
  return best > 0 ? best : null;
}

export async function matmulCases(ctx: GpuContext): Promise<BenchCase[]> {
  const variant = matmulVariantName(ctx);
  const made: Tensor[] = [];
  const t = (shape: number[], v = 0.01) => {
    const x = fill(ctx, shape, v);
    made.push(x);
    return x;
  };
  const n = 1024;
  const a = t([n, n]);
  const b = t([n, n]);
  const flops = 2 * n * n * n;
  const naiveClock = new Stopwatch();
  const mainClock = new Stopwatch();
  const bare = await kernelOnlyMs(ctx, n, n, n);
  const bareNote = bare ? `; kernel alone ${gflops(flops, bare).toFixed(1)} GFLOP/s (GPU timestamps, JS thread asleep)` : '';
  const cases: BenchCase[] = [
    {
      kernel: 'matmul.naive', shape: `${n}x${n}x${n}`, flops,
      run: () => {
        naiveClock.tick();
        setMatmulVariant(ctx, 'naive');
        try {
          noGrad(() => matmul(a, b)).dispose();
        } finally {
          setMatmulVariant(ctx, null);
        }
      },
      dispose: () => {},
    },
    {
      kernel: `matmul.${variant}`, shape: `${n}x${n}x${n}`, flops,
      run: () => {
        mainClock.tick();
        noGrad(() => matmul(a, b)).dispose();
      },
      dispose: () => {},
      get note(): string {
        if (!Number.isFinite(naiveClock.best) || !Number.isFinite(mainClock.best)) return `naive kernel not run${bareNote}`;
        return `x${(naiveClock.best / mainClock.best).toFixed(1)} vs naive ${gflops(flops, naiveClock.best).toFixed(2)} GFLOP/s${bareNote}`;
      },
    },
  ];
  // CLIP ViT-B/32 training shapes through linear (weights [out, in], the HF layout) with bias.
  const clip: [string, number, number, number][] = [
    ['text MLP fc1', 32 * 77, 2048, 512],
    ['vision MLP fc1', 32 * 50, 3072, 768],
    ['text attention proj', 32 * 77, 512, 512],
  ];
  for (const [what, M, N, K] of clip) {
    const x = t([M, K]);
    const w = t([N, K]);
    const bias = t([N]);
    cases.push({
      kernel: `matmul.${variant}`, shape: `${M}x${N}x${K}`, flops: 2 * M * N * K, note: `${what}: linear + bias`,
      run: () => noGrad(() => linear(x, w, bias)).dispose(),
      dispose: () => {},
    });
  }
  // The last case to run frees the shared inputs.
  const last = cases[cases.length - 1];
  last.dispose = () => {
    for (const x of made) x.dispose();
  };
  return cases;
}
