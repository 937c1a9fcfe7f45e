#!/usr/bin/env bash
# Installs Debian's Chromium for the in-browser tests (`npm run test:browser`, driven by
# playwright-core with executablePath /usr/bin/chromium). On a machine without a GPU, Chromium's
# WebGPU runs on its bundled SwiftShader (in chromium-common); no other driver is needed.
# Idempotent; needs root (or sudo). Elsewhere: install Chromium or Chrome and set CHROMIUM_PATH.
set -euo pipefail
say() { echo "[setup-chromium] $*"; }
version() { /usr/bin/chromium --version 2>/dev/null | grep -o 'Chromium [0-9.]*' || true; }
if [ -x /usr/bin/chromium ] && [ -n "$(version)" ]; then
  say "already installed: $(version)"
  exit 0
fi
if ! command -v apt-get >/dev/null || [ ! -r /etc/os-release ] || ! grep -q '^ID=debian' /etc/os-release; then
  say "this recipe is for Debian (apt); install Chromium or Chrome by hand and set CHROMIUM_PATH to its executable"
  exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { say "needs root to install packages (no sudo found)"; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
# With recommends: they bring fonts-liberation, which the page screenshots need for legible text.
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium >/dev/null
v=$(version)
[ -n "$v" ] || { say "chromium installed but /usr/bin/chromium --version fails"; exit 1; }
say "installed $v"
