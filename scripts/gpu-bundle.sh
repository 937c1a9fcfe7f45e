#!/usr/bin/env bash
# Packs what a GPU machine without Node needs into .gpu/ (git-ignored, under the device tool's
# 64 MiB carry): this machine's node binary (needs only glibc and libstdc++ there), the runtime
# and test dependencies (Dawn for linux-x64 only; no TypeScript, esbuild, tfjs or Chromium),
# build/ and dist/, and libvulkan1 for a machine without a Vulkan loader. Run here after
# `bash scripts/setup.sh`; then, on the device: `bash scripts/gpu-run.sh` (carry .gpu).
set -euo pipefail
cd "$(dirname "$0")/.."
npm run --silent build
npm run --silent build:test
mkdir -p .gpu
rm -f .gpu/*.deb .gpu/bundle.tar.xz
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/node_modules"
cp "$(command -v node)" "$stage/bin/node"
skip='^(@tensorflow|@typescript|typescript|@esbuild|esbuild|playwright-core|@jax-js|@types|@webgpu|seedrandom|long|node-fetch|whatwg-url|tr46|webidl-conversions)$'
for d in node_modules/*; do
  name=$(basename "$d")
  [[ $name =~ $skip ]] && continue
  cp -a "$d" "$stage/node_modules/"
done
find "$stage/node_modules/webgpu/dist" -mindepth 1 -maxdepth 1 ! -name linux-x64 -exec rm -rf {} +
cp -a build dist "$stage/"
tar -C "$stage" -cf - . | xz -T0 -6 > .gpu/bundle.tar.xz
# The Vulkan loader, as the device notes advise (only unpacked there when the machine lacks one).
if command -v apt-get >/dev/null; then
  (cd .gpu && apt-get download libvulkan1 >/dev/null 2>&1) || echo "[gpu-bundle] apt-get download libvulkan1 failed: the device must have its own loader" >&2
fi
# .gitignore keeps .gpu/ out of commits; the device tool carries it when named in carry.
du -sh .gpu/* | sed 's/^/[gpu-bundle] /'
