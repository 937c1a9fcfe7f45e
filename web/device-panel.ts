/** Creates the engine's GpuContext from navigator.gpu and shows what the adapter offers. */
import { GpuContext } from './lib-entry.js';
import { $, setFacts, setStatus, showError } from './ui.js';

const SHOWN_LIMITS = ['maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup', 'maxStorageBuffersPerShaderStage'];

export async function createDevice(): Promise<GpuContext> {
  const section = $('#device');
  const status = $('[data-testid="device-status"]', section);
  if (!('gpu' in navigator) || !navigator.gpu) {
    throw new Error('this browser has no WebGPU (navigator.gpu is missing). Use a recent Chrome, Edge or Firefox; ' +
      'on Linux, Chromium needs --enable-unsafe-webgpu. The page must come from https:// or http://127.0.0.1.');
  }
  const ctx = await GpuContext.create(navigator.gpu);
  ctx.device.lost.then((info) => {
    if (info.reason !== 'destroyed') showError('WebGPU device lost', `${info.reason}: ${info.message}`);
  });
  ctx.device.addEventListener('uncapturederror', (ev) => showError('WebGPU error', (ev as GPUUncapturedErrorEvent).error.message));
  const i = ctx.info;
  const rows: [string, string][] = [
    ['adapter', [i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(' / ') || 'unknown'],
    ['kind', `${i.cpuBacked ? 'CPU-backed (software)' : 'GPU'}${i.compatibilityMode ? ', compatibility mode' : ''}`],
    ['features', i.features.join(', ') || 'none of shader-f16, subgroups, timestamp-query'],
    ['f16 weights', i.features.includes('shader-f16') ? 'available' : 'not available: f32 paths'],
  ];
  if (i.subgroupMinSize !== undefined) rows.push(['subgroup size', `${i.subgroupMinSize}–${i.subgroupMaxSize}`]);
  for (const name of SHOWN_LIMITS) if (i.limits[name] !== undefined) rows.push([name, i.limits[name].toLocaleString('en')]);
  setFacts($('[data-testid="device-info"]', section), rows);
  setStatus(status, 'Device ready.');
  return ctx;
}
