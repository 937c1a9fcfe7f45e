#!/usr/bin/env bash
# Sets up the PyTorch scale-out path: a venv at interop/torch/.venv with torch, transformers,
# peft, safetensors and pillow (requirements.txt). Idempotent: a venv that already imports the
# pinned versions is kept. Needs python3 >= 3.10 with venv (python3-venv on Debian).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
py="${PYTHON:-python3}"
stamp="$venv/.requirements"

if [[ -x "$venv/bin/python" && -f "$stamp" ]] && cmp -s "$stamp" "$here/requirements.txt"; then
  echo "[torch-setup] $venv is up to date"
  exit 0
fi
if ! "$py" -c 'import venv, ensurepip' 2>/dev/null; then
  if command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
    echo "[torch-setup] installing python3-venv"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null
  else
    echo "[torch-setup] $py has no venv module: install python3-venv" >&2
    exit 1
  fi
fi
"$py" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --disable-pip-version-check)
# Without a route to pypi.org (a machine with a local package mirror or wheel folder configured
# in pip.conf), pip's default five retries per lookup add minutes: fail over at once instead.
if ! "$venv/bin/python" - <<'PY' 2>/dev/null
import urllib.request
urllib.request.urlopen("https://pypi.org/simple/", timeout=5)
PY
then
  echo "[torch-setup] pypi.org is not reachable: using the package sources in pip's configuration"
  pip+=(--retries 0 --timeout 10)
fi
t0=$SECONDS
# (A configured mirror that lacks a package's folder makes pip warn per package: not news.)
"${pip[@]}" -q -r "$here/requirements.txt" 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
"$venv/bin/python" -c 'import torch, transformers, peft, safetensors, PIL; print("[torch-setup] torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__)'
cp "$here/requirements.txt" "$stamp"
echo "[torch-setup] ready in $((SECONDS - t0)) s: $venv"
