import type { GpuContext } from './context.js';
import { OpError, shapeStr } from './errors.js';
import { scope, Tensor } from './tensor.js';

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

function withGradMode<T>(enabled: boolean, fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = enabled;
  try {
    const r = fn();
    if (r instanceof Promise) throw new Error('noGrad/enableGrad(fn): fn returned a Promise; grad mode is not kept across awaits');
    return r;
  } finally {
    gradEnabled = prev;
  }
}

/** Runs `fn` without recording autograd nodes (inference, tracing, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  return withGradMode(false, fn);
}

/**
 * Runs `fn` with recording on, also inside `noGrad` or a backward rule: how a rule recomputes
 * a block's forward (see `checkpoint`).
 */
export function enableGrad<T>(fn: () => T): T {
  return withGradMode(true, fn);
}

/**
 * Runs `fn` without recording and frees every tensor it makes except those it returns: a
 * forward pass for evaluation, embedding or tracing.
 */
export function inference<T>(ctx: GpuContext, fn: () => T): T {
  return noGrad(() => scope(ctx, fn));
}

/**
 * A node's gradient rule. It runs inside a `scope`: every tensor it makes and does not return
 * is freed when it returns, so rules never dispose their temporaries.
 */
const NO_PENDING: PendingGrads = { take: () => null, activation: () => null, activationApplied: false };

export type BackwardFn = (gradOut: Tensor, saved: readonly Tensor[], pending: PendingGrads) => (Tensor | null)[];

/**
 * The gradients already gathered for a node's inputs from their other consumers. A rule that can
 * add one into the gradient it computes for free (a matmul's epilogue addend) takes it: its
 * result for that input then holds the sum, and the separate add is saved. Rules that ignore it
 * lose nothing: the engine adds as before.
 */
export interface PendingGrads {
  /** Input i's gathered gradient, handed over (the rule's result for i must include it), or null. */
  take(i: number): Tensor | null;
  /**
   * Where input i came out of an activation its producer applied (a matmul's fused one, see
   * `record`'s `activationOut`) and this node is its only consumer: the activation and its saved
   * pre-activation, which the rule must multiply its gradient for input i by (act'(pre), in a
   * matmul epilogue); the producer then skips that step. Null otherwise (the rule computes the
   * plain gradient). Asking commits the rule to it.
   */
  activation(i: number): FusedActivationGrad | null;
  /** This node's incoming gradient already carries its output activation's derivative (a consumer applied it). */
  readonly activationApplied: boolean;
}

/** An activation whose derivative a consumer's gradient rule applies for the producer. */
export interface FusedActivationGrad {
  activation: string;
  pre: Tensor;
}

/** Which of a node's saved tensors is the pre-activation of the activation ending its op. */
export interface ActivationOut {
  activation: string;
  savedIndex: number;
}

/**
 * One recorded op: its inputs, the tensors it saved, and how to push a gradient through it.
 *
 * A graph frees itself: a node lives while its output tensor's handle is alive or a live node
 * consumes that output (`Tensor.graphUses`). When the last of these goes (a scope disposes the
 * handles of a forward that never ran backward, or an exception unwinds one), the node frees
 * its saved tensors and lets go of its inputs, and so on down the graph.
 */
export class GradNode {
  private savedTensors: Tensor[] | null;
  private detached = false;

  constructor(
    readonly op: string,
    readonly inputs: readonly Tensor[],
    saved: readonly Tensor[],
    readonly backwardFn: BackwardFn,
    readonly activationOut: ActivationOut | null = null,
  ) {
    // Saved tensors are aliases: they keep the memory alive after the caller disposes its handle.
    this.savedTensors = saved.map((t) => t.alias().keep());
    for (const t of inputs) t.graphUses++;
  }

  get released(): boolean {
    return this.savedTensors === null;
  }

  /** The saved pre-activation a consumer may differentiate through for this node, or null. */
  fusableActivation(): FusedActivationGrad | null {
    if (!this.activationOut || !this.savedTensors) return null;
    return { activation: this.activationOut.activation, pre: this.savedTensors[this.activationOut.savedIndex] };
  }

  backward(gradOut: Tensor, pending: PendingGrads = NO_PENDING): (Tensor | null)[] {
    if (!this.savedTensors) {
      throw new OpError(this.op, 'backward through a graph that was already freed (call backward({ retainGraph: true }) to run it twice)');
    }
    const saved = this.savedTensors;
    return scope(gradOut.ctx, () => this.backwardFn(gradOut, saved, pending));
  }

  /** Frees the saved tensors only: backward does this as it goes, the graph's shape stays. */
  freeSaved(): void {
    if (!this.savedTensors) return;
    for (const t of this.savedTensors) t.dispose();
    this.savedTensors = null;
  }

  /**
   * Frees this node and lets go of its inputs; an input whose handle is gone and that no other
   * live node consumes is released in turn (iteratively: graphs are deep).
   */
  release(): void {
    const stack: GradNode[] = [this];
    while (stack.length > 0) {
      const node = stack.pop()!;
      if (node.detached) continue;
      node.detached = true;
      node.freeSaved();
      for (const t of node.inputs) {
        t.graphUses--;
        if (t.disposed && t.graphUses === 0 && t.node) stack.push(t.node);
      }
    }
  }
}

/**
 * Records `out` as produced by `op` from `inputs` when grad mode is on and an input requires a
 * gradient. `saved` are the tensors backward needs (inputs or outputs or internals).
 * `activationOut`: the op ends in an elementwise activation whose pre-activation is saved at that
 * index, and its rule honours `pending.activationApplied` (see PendingGrads.activation).
 */
export function record(
  op: string, out: Tensor, inputs: readonly Tensor[], saved: readonly Tensor[], backward: BackwardFn, activationOut?: ActivationOut,
): Tensor {
  if (!gradEnabled || !inputs.some((t) => t.requiresGrad)) return out;
  if (activationOut && !(Number.isInteger(activationOut.savedIndex) && activationOut.savedIndex >= 0 && activationOut.savedIndex < saved.length)) {
    throw new OpError(op, `activationOut.savedIndex ${activationOut.savedIndex} is not one of the ${saved.length} saved tensors`);
  }
  out.requiresGrad = true;
  out.node = new GradNode(op, inputs, saved, backward, activationOut ?? null);
  return out;
}

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  // Iterative DFS: transformer graphs are deep enough to overflow recursion in the browser.
  const stack: [Tensor, number][] = [[root, 0]];
  seen.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    const inputs = t.node?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const c = inputs[i];
      if (c.requiresGrad && !seen.has(c)) {
        seen.add(c);
        stack.push([c, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  return order.reverse();
}

export interface BackwardOptions {
  /** Gradient of the root; defaults to ones (the root must then have one element). */
  grad?: Tensor;
  /** Keep saved tensors so backward can run again through the same graph. */
  retainGraph?: boolean;
}

/**
 * Accumulates d(root)/d(leaf) into `.grad` of every leaf that requires a gradient. Saved
 * activations are freed as soon as their node has run.
 */
export function backward(root: Tensor, ones: (ctx: GpuContext, shape: readonly number[]) => Tensor, add: (a: Tensor, b: Tensor) => Tensor, opts: BackwardOptions = {}): void {
  if (!root.requiresGrad) throw new OpError('backward', `${root} does not require grad (no input of it requires grad)`);
  if (!opts.grad && root.size !== 1) {
    throw new OpError('backward', `root ${shapeStr(root.shape)} is not a scalar: pass { grad }`);
  }
  if (opts.grad && opts.grad.shape.join() !== root.shape.join()) {
    throw new OpError('backward', `grad ${shapeStr(opts.grad.shape)} does not match root ${shapeStr(root.shape)}`);
  }
  const ctx = root.ctx;
  noGrad(() => {
    const order = topoOrder(root);
    const grads = new Map<Tensor, Tensor>();
    // Tensors whose gathered gradient is already dL/dpre of their producer's activation.
    const activationApplied = new Set<Tensor>();
    grads.set(root, opts.grad ? opts.grad.alias().keep() : ones(ctx, root.shape).keep());
    for (const t of order) {
      const g = grads.get(t);
      if (!g) continue;
      grads.delete(t);
      const node = t.node;
      if (!node) {
        // A leaf: accumulate.
        if (t.grad) {
          const sum = ctx.withOp('grad-accumulate', () => add(t.grad!, g)).keep();
          t.grad.dispose();
          g.dispose();
          t.grad = sum;
        } else {
          t.grad = g;
        }
        continue;
      }
      // Gathered gradients a rule may fold into its own (an input used once by this node only:
      // a repeated input would get the gathered sum twice).
      const taken = new Set<number>();
      const fused = new Set<number>();
      const once = (inp: Tensor | undefined): inp is Tensor => !!inp && inp.requiresGrad && node.inputs.indexOf(inp) === node.inputs.lastIndexOf(inp);
      const pending: PendingGrads = {
        take: (i) => {
          const inp = node.inputs[i];
          const prev = once(inp) && !fused.has(i) ? grads.get(inp) : undefined;
          if (!prev) return null;
          taken.add(i);
          return prev;
        },
        activation: (i) => {
          const inp = node.inputs[i];
          // Only this node consumes it (so no other gradient is added to what the rule returns).
          if (!once(inp) || inp.graphUses !== 1 || grads.has(inp) || taken.has(i)) return null;
          const f = inp.node?.fusableActivation() ?? null;
          if (f) fused.add(i);
          return f;
        },
        activationApplied: activationApplied.delete(t),
      };
      const gin = ctx.withOp(`${node.op}.backward`, () => node.backward(g, pending));
      g.dispose();
      if (!opts.retainGraph) node.freeSaved();
      node.inputs.forEach((inp, i) => {
        const gi = gin[i];
        if (!gi) return;
        gi.keep();
        if (!inp.requiresGrad) {
          gi.dispose();
          return;
        }
        if (gi.shape.join() !== inp.shape.join()) {
          throw new OpError(`${node.op}.backward`, `gradient ${shapeStr(gi.shape)} for input ${i} ${shapeStr(inp.shape)}`);
        }
        const prev = grads.get(inp);
        if (fused.has(i)) activationApplied.add(inp);
        if (taken.has(i)) {
          // gi already holds prev (the rule added it in): replace, do not add again.
          grads.set(inp, gi);
          prev!.dispose();
        } else if (prev) {
          grads.set(inp, add(prev, gi).keep());
          prev.dispose();
          gi.dispose();
        } else {
          grads.set(inp, gi);
        }
      });
      // A rule may return more entries than the node has inputs: dispose the extras.
      for (let i = node.inputs.length; i < gin.length; i++) gin[i]?.dispose();
    }
    for (const g of grads.values()) g.dispose();
    // Nodes no gradient reached were skipped above; without retainGraph they go too.
    if (!opts.retainGraph) for (const t of order) t.node?.release();
  });
}

/** Frees the saved tensors of every node reachable from `root` (a graph that will not be run). */
export function freeGraph(root: Tensor): void {
  for (const t of topoOrder(root)) t.node?.release();
}
