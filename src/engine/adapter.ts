/**
 * Adapter and device selection shared by Node and the browser: both hand in a `GPU` object
 * (`navigator.gpu`, or the one the Node-only module creates through Dawn).
 */
export const OPTIONAL_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query'] as const;

export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** True for CPU-backed adapters (lavapipe, SwiftShader, WARP): kernels avoid barriers there. */
  cpuBacked: boolean;
  compatibilityMode: boolean;
  features: string[];
  subgroupMinSize?: number;
  subgroupMaxSize?: number;
  limits: Record<string, number>;
}

export const NO_ADAPTER_HELP =
  'No WebGPU adapter found. Install a GPU driver with Vulkan (Linux), Metal (macOS) or D3D12 (Windows) support, ' +
  'or on a machine without a GPU run `bash scripts/setup-lavapipe.sh` (Debian: Mesa lavapipe software Vulkan).';

function isCpuBacked(info: GPUAdapterInfo | undefined, fallback: boolean): boolean {
  if (fallback) return true;
  const text = `${info?.vendor ?? ''} ${info?.architecture ?? ''} ${info?.device ?? ''} ${info?.description ?? ''}`.toLowerCase();
  return /llvmpipe|lavapipe|swiftshader|warp|software|cpu/.test(text);
}

const LIMIT_NAMES = [
  'maxBufferSize', 'maxStorageBufferBindingSize', 'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY', 'maxComputeWorkgroupsPerDimension', 'maxUniformBufferBindingSize',
  'minStorageBufferOffsetAlignment', 'minUniformBufferOffsetAlignment', 'maxBindGroups',
] as const;

export interface DeviceRequest {
  adapter: GPUAdapter;
  device: GPUDevice;
  summary: AdapterSummary;
}

/** Core adapter first, compatibility mode as fallback; real limits and the optional features. */
export async function requestGpuDevice(gpu: GPU, opts: { powerPreference?: GPUPowerPreference } = {}): Promise<DeviceRequest> {
  let compatibilityMode = false;
  let adapter = await gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
  if (!adapter) {
    adapter = await gpu.requestAdapter({ featureLevel: 'compatibility' } as GPURequestAdapterOptions);
    compatibilityMode = adapter !== null;
  }
  if (!adapter) throw new Error(NO_ADAPTER_HELP);
  const features = OPTIONAL_FEATURES.filter((f) => adapter!.features.has(f)) as GPUFeatureName[];
  const requiredLimits: Record<string, number> = {};
  for (const name of LIMIT_NAMES) {
    const v = (adapter.limits as unknown as Record<string, number>)[name];
    if (typeof v === 'number') requiredLimits[name] = v;
  }
  const device = await adapter.requestDevice({ requiredFeatures: features, requiredLimits });
  const info = adapter.info;
  const fallback = Boolean((adapter as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter);
  const limits: Record<string, number> = {};
  for (const name of LIMIT_NAMES) limits[name] = (device.limits as unknown as Record<string, number>)[name];
  const summary: AdapterSummary = {
    vendor: info?.vendor ?? '',
    architecture: info?.architecture ?? '',
    device: info?.device ?? '',
    description: info?.description ?? '',
    cpuBacked: isCpuBacked(info, fallback),
    compatibilityMode,
    features: features.map(String),
    subgroupMinSize: (info as unknown as { subgroupMinSize?: number })?.subgroupMinSize,
    subgroupMaxSize: (info as unknown as { subgroupMaxSize?: number })?.subgroupMaxSize,
    limits,
  };
  return { adapter, device, summary };
}
