// Exits 0 and prints the adapter when Dawn (npm `webgpu`) finds one; exits 1 otherwise.
import { create, globals } from 'webgpu';
Object.assign(globalThis, globals);
process.env.XDG_RUNTIME_DIR ??= '/tmp';
const gpu = create([]);
const adapter = await gpu.requestAdapter();
if (!adapter) {
  console.log('no WebGPU adapter');
  process.exit(1);
}
const i = adapter.info;
console.log(`WebGPU adapter: ${[i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(' / ')}`);
process.exit(0);
