/**
 * The demo page: one GpuContext from navigator.gpu, shared by every panel. Panels that need a
 * model (CLIP similarity, causal tracing, fine-tuning) plug in beside the matmul panel.
 */
import { createDevice } from './device-panel.js';
import { setUpMatmulPanel } from './matmul-panel.js';
import { $, catchUncaught, setStatus, showError } from './ui.js';

async function start(): Promise<void> {
  catchUncaught();
  try {
    const ctx = await createDevice();
    setUpMatmulPanel(ctx);
    document.body.dataset.gpu = 'ready';
  } catch (e) {
    document.body.dataset.gpu = 'error';
    setStatus($('[data-testid="device-status"]'), 'No WebGPU device.');
    showError('WebGPU', e);
  }
}

void start();
