/**
 * Checks shared by every front end that starts a fine-tune (train.js and the demo page), so a
 * value one accepts the other accepts too, with the same message.
 */
import { MAX_LR } from '../engine/optim/adamw.js';
import { layerScales, type CteReport } from './cte.js';

export { MAX_LR };

/** The learning rate, or an error naming `what` (a flag or a field) and the bounds. */
export function checkLr(lr: number, what = 'lr'): number {
  if (!Number.isFinite(lr) || !(lr > 0) || lr > MAX_LR) {
    throw new Error(`${what}: must be greater than 0 and at most ${MAX_LR}, got ${lr}`);
  }
  return lr;
}

/**
 * Per-block learning-rate scales alpha^beta from a parsed cte.json for a text encoder of
 * `layers` blocks; errors name `file`: a trace of another depth, or alpha 0 everywhere (no block
 * would train).
 */
export function cteLayerScales(cte: CteReport, layers: number, beta: number, file: string): number[] {
  if (cte.layers !== layers) throw new Error(`${file}: traced a text encoder of ${cte.layers} layers, the model has ${layers}`);
  const scales = layerScales(cte.alpha, beta);
  if (scales.every((x) => x === 0)) {
    throw new Error(`${file}: alpha is 0 for every layer (${cte.alpha.join(', ')}), so no layer would train; re-trace, or train with --uniform`);
  }
  return scales;
}
