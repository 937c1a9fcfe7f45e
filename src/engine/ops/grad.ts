import { backward as runBackward, enableGrad, GradNode, isGradEnabled, type BackwardOptions } from '../autograd.js';
import { OpError } from '../errors.js';
import { scope, type Tensor } from '../tensor.js';
import { add, ones } from './elementwise.js';

/** Accumulates gradients of `root` into `.grad` of the leaves that require them. */
export function backward(root: Tensor, opts: BackwardOptions = {}): void {
  runBackward(root, ones, add, opts);
}

/**
 * Activation recomputation: runs `fn(...inputs)` but keeps only `inputs` for backward, where
 * the block's forward is run again with recording on and differentiated on the spot. Peak
 * memory then holds one block's insides at a time instead of every block's.
 *
 * `fn` must be a pure function of `inputs` and of parameters it closes over (the same result
 * when run twice): parameters receive their gradients during the recomputation, the inputs
 * through the returned node. Outside grad mode, or when nothing in `fn` needs a gradient, it is
 * a plain call.
 */
export function checkpoint(fn: (...xs: Tensor[]) => Tensor, inputs: readonly Tensor[]): Tensor {
  if (inputs.length === 0) throw new OpError('checkpoint', 'needs at least one input tensor');
  const ctx = inputs[0].ctx;
  const out = scope(ctx, () => fn(...inputs));
  if (!isGradEnabled() || !out.node) return out;
  if (inputs.includes(out)) throw new OpError('checkpoint', 'fn returned one of its inputs; checkpoint a block that computes something');
  // The insides recorded just now are dropped (recomputed in backward); only the inputs stay.
  const inner = out.node;
  out.node = null;
  inner.release();
  const needs = inputs.map((t) => t.requiresGrad);
  out.node = new GradNode('checkpoint', inputs, inputs, (gradOut, saved) => {
    // Fresh leaves over the saved inputs: the recomputed graph stops at them.
    const xs = saved.map((s, i) => {
      const x = s.alias();
      x.requiresGrad = needs[i];
      return x;
    });
    const y = enableGrad(() => scope(ctx, () => fn(...xs)));
    if (y.shape.join() !== gradOut.shape.join() || !y.requiresGrad) {
      throw new OpError('checkpoint', 'the recomputed forward differs from the first one (fn must be a pure function of its inputs and parameters)');
    }
    runBackward(y, ones, add, { grad: gradOut });
    return xs.map((x) => {
      const g = x.grad;
      x.grad = null;
      return g;
    });
  });
  out.requiresGrad = true;
  return out;
}
