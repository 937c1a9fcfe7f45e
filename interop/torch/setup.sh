#!/usr/bin/env bash
# Sets up the PyTorch scale-out path: a venv at interop/torch/.venv with torch, transformers,
# peft, safetensors and pillow (requirements.txt). Idempotent: a venv that already imports the
# pinned versions is kept. Needs python3 >= 3.10 with venv (python3-venv on Debian).
# Sourcing this file only defines pip_index_reachable (the tests call it).

# Whether pip reaches the package index it is configured with (pip.conf or PIP_INDEX_URL, proxy
# and certificate settings): asked of pip itself, so a site mirror or proxy counts and no host is
# named here. Only the primary index is probed: wheel folders (find-links) and extra indexes
# (a local file:// mirror, say) answer even when it does not, so the configuration's other
# sources are left out (its index URL is read first, then the config files are set aside). A pip
# without `pip index` (21.2+) reads as unreachable: only the retries differ.
pip_index_reachable() {
  local url="${PIP_INDEX_URL:-}"
  # `pip config list`, not `pip config get`: the latter misses a PIP_CONFIG_FILE's keys (pip 23).
  [ -n "$url" ] || url="$("$1" -m pip config list 2>/dev/null | sed -n "s/^global\.index-url='\(.*\)'\$/\1/p" | head -n 1)"
  PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS='' PIP_EXTRA_INDEX_URL='' timeout 60 "$1" -m pip index versions pip \
    ${url:+--index-url "$url"} --disable-pip-version-check --retries 0 --timeout 5 >/dev/null 2>&1
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
