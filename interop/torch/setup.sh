#!/usr/bin/env bash
# Sets up the PyTorch scale-out path: a venv at interop/torch/.venv with torch, transformers,
# peft, safetensors and pillow (requirements.txt). Idempotent: a venv that already imports the
# pinned versions is kept. Needs python3 >= 3.10 with venv (python3-venv on Debian).
# Sourcing this file only defines pip_index_reachable (the tests call it).

# Whether pip reaches the package index it is configured with (pip.conf, PIP_INDEX_URL, proxy and
# certificate settings): asked of pip itself, so a site mirror or proxy counts and no host is
# named here. Wheel folders (find-links) are left out of the probe, as they answer even when the
# index does not. A pip without `pip index` (21.2+) reads as unreachable: only the retries differ.
pip_index_reachable() {
  PIP_FIND_LINKS='' timeout 60 "$1" -m pip index versions pip --disable-pip-version-check --retries 0 --timeout 5 >/dev/null 2>&1
}

main() {
  set -euo pipefail
  local here venv py stamp t0
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
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
  local pip=("$venv/bin/python" -m pip install --disable-pip-version-check)
  # Without a route to the index (a machine with only a wheel folder, or an index it cannot
  # reach), pip's default five retries per lookup add minutes: fail over at once instead.
  if ! pip_index_reachable "$venv/bin/python"; then
    echo "[torch-setup] pip's package index is not reachable: using the other package sources in pip's configuration"
    pip+=(--retries 0 --timeout 10)
  fi
  t0=$SECONDS
  # (A configured mirror that lacks a package's folder makes pip warn per package: not news.)
  "${pip[@]}" -q -r "$here/requirements.txt" 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
  "$venv/bin/python" -c 'import torch, transformers, peft, safetensors, PIL; print("[torch-setup] torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__)'
  cp "$here/requirements.txt" "$stamp"
  echo "[torch-setup] ready in $((SECONDS - t0)) s: $venv"
}

# `return` succeeds only in a sourced file: sourced (as the tests do), nothing is installed.
if ! (return 0 2>/dev/null); then main "$@"; fi
