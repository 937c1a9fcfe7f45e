import { backward as runBackward, type BackwardOptions } from '../autograd.js';
import type { Tensor } from '../tensor.js';
import { add, ones } from './elementwise.js';

/** Accumulates gradients of `root` into `.grad` of the leaves that require them. */
export function backward(root: Tensor, opts: BackwardOptions = {}): void {
  runBackward(root, ones, add, opts);
}
