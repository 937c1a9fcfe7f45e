#!/usr/bin/env bash
# Fresh-machine set-up: installs npm dependencies, makes WebGPU available (installing Mesa's
# lavapipe software Vulkan driver only when no adapter is found), and builds dist/.
# On a machine whose GPU driver already gives an adapter it changes nothing system-wide.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "[setup] $*"; }

major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$major" -lt 20 ]; then
  say "Node.js 20 or newer is required (found: $(node --version 2>/dev/null || echo none))"; exit 1
fi

if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; else npm install --no-audit --no-fund --loglevel=error; fi

if node scripts/probe-webgpu.mjs 2>/dev/null; then
  say "WebGPU adapter found; no driver installed"
else
  say "no WebGPU adapter: installing Mesa lavapipe (software Vulkan) with scripts/setup-lavapipe.sh"
  bash scripts/setup-lavapipe.sh
  node scripts/probe-webgpu.mjs 2>/dev/null || { say "still no WebGPU adapter after installing lavapipe"; exit 1; }
fi

bash scripts/setup-chromium.sh || say "Chromium not installed: npm run test:browser unavailable (see scripts/setup-chromium.sh)"

npm run --silent build
say "built dist/"
