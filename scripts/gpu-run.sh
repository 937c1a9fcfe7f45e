#!/usr/bin/env bash
# On a GPU machine (the device tool), from the repository root with .gpu/ carried
# (scripts/gpu-bundle.sh made it): unpacks Node and the builds, finds the Vulkan adapter, runs the
# op and gradient tests on it, then the kernel benchmarks and the NAST step profiles, writing
# everything under ${OUT:-gpu-out}/ (adapter.txt, tests.txt, bench.txt + its JSON, steps.txt). Under 5
# minutes on an H200 is the aim; each stage has its own time limit so one hang costs only it.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-out}"
mkdir -p "$out"
[[ -f .gpu/bundle.tar.xz ]] || { echo "gpu-run: no .gpu/bundle.tar.xz: run scripts/gpu-bundle.sh here and carry .gpu" >&2; exit 1; }
t0=$SECONDS
tar -xJf .gpu/bundle.tar.xz -C . || exit 1
export PATH="$PWD/bin:$PATH"
if ! ldconfig -p 2>/dev/null | grep -q libvulkan.so.1; then
  for f in .gpu/*.deb; do [[ -f $f ]] && dpkg -x "$f" /; done
  ldconfig
fi
# The NVIDIA ICD is not always where the loader looks.
if [[ -z "${VK_DRIVER_FILES:-}" && -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]] && ! ls /usr/share/vulkan/icd.d/nvidia* >/dev/null 2>&1; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
echo "[gpu-run] unpacked in $((SECONDS - t0)) s; node $(node --version)"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
  timeout 60 node --input-type=module -e "import { nodeContext } from './build/src/engine/node-gpu.js'; const c = await nodeContext(); console.log(c.adapterInfo()); console.log('tuning', JSON.stringify(c.tuning)); process.exit(0);"
} 2>&1 | tee "$out/adapter.txt"
grep -qi -E 'llvmpipe|swiftshader' "$out/adapter.txt" && echo "[gpu-run] warning: a software adapter, not the GPU" | tee -a "$out/adapter.txt"
ops='(matmul|attention|softmax|layernorm|elementwise|reduce|gather|optim|loss|lora-step|shape|tuning|context)\.test\.js$'
timeout 240 node node_modules/uvu/bin.js build/test "$ops" > "$out/tests.txt" 2>&1
echo "[gpu-run] op tests exit $? ($(grep -E 'Passed|Total' "$out/tests.txt" | tr -s ' \n' ' ' | sed 's/\x1b\[[0-9;]*m//g'))"
# The table prints row by row, so a timeout keeps what was measured; the JSON comes at the end.
timeout 240 node build/bench/run.js > "$out/bench.txt" 2>&1
echo "[gpu-run] bench exit $? ($(grep -c ' ms' "$out/bench.txt") lines with times)"
cp bench/results/*.json "$out/" 2>/dev/null
{ timeout 60 node build/bench/compare/profile-step.js tiny 5; timeout 150 node build/bench/compare/profile-step.js vit 3; } > "$out/steps.txt" 2>&1
echo "[gpu-run] step profiles exit $?"
grep -E '^step' "$out/steps.txt" | tail -4
echo "[gpu-run] done in $((SECONDS - t0)) s"
