#!/usr/bin/env bash
# npm run test:torch: the PyTorch interop tests (interop/torch/setup.sh first; needs dist/ built).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="$here/.venv/bin/python"
if [[ ! -x "$py" ]]; then
  echo "test:torch: no $here/.venv: run bash interop/torch/setup.sh first" >&2
  exit 1
fi
cd "$here/../.."
[[ -f dist/train.js ]] || npm run --silent build
# Local folders only: nothing may reach for the model hub.
export HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error HF_HUB_DISABLE_PROGRESS_BARS=1
t0=$SECONDS
"$py" interop/torch/test_torch.py
echo "test:torch: $((SECONDS - t0)) s"
