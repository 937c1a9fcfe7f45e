/**
 * The demo page: one GpuContext from navigator.gpu, shared by every panel through the App
 * (model, images, CTE scales, one GPU job at a time).
 */
import { App } from './app.js';
import { setUpClipPanel } from './clip-panel.js';
import { createDevice } from './device-panel.js';
import { setUpMatmulPanel } from './matmul-panel.js';
import { setUpModelPanel } from './model-panel.js';
import { setUpTracePanel } from './trace-panel.js';
import { setUpTrainPanel } from './train-panel.js';
import { $, catchUncaught, setStatus, showError } from './ui.js';

async function start(): Promise<void> {
  catchUncaught();
  let app: App;
  try {
    app = new App(await createDevice());
  } catch (e) {
    document.body.dataset.gpu = 'error';
    setStatus($('[data-testid="device-status"]'), 'No WebGPU device.');
    showError('WebGPU', e);
    return;
  }
  try {
    setUpModelPanel(app);
    setUpClipPanel(app);
    setUpTracePanel(app);
    setUpTrainPanel(app);
    setUpMatmulPanel(app);
    document.body.dataset.gpu = 'ready';
  } catch (e) {
    document.body.dataset.gpu = 'error';
    showError('Setting up the page', e);
  }
}

void start();
