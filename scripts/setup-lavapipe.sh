#!/usr/bin/env bash
# Installs Mesa's lavapipe software Vulkan driver so Dawn (npm `webgpu`) finds an adapter on a
# machine without a GPU. Debian bookworm ships Mesa 22.3, which lacks Vulkan features Dawn needs,
# so Mesa comes from bookworm-backports (25.x). Idempotent; needs root (or sudo).
set -euo pipefail
say() { echo "[setup-lavapipe] $*"; }
if dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | grep -q bpo; then
  say "lavapipe already installed (mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers))"
  exit 0
fi
if [ ! -r /etc/os-release ] || ! grep -q 'VERSION_CODENAME=bookworm' /etc/os-release; then
  say "this recipe is for Debian bookworm; install a Vulkan driver (GPU driver or Mesa >= 24 lavapipe) by hand"
  exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { say "needs root to install packages (no sudo found)"; exit 1; }
  SUDO=sudo
fi
src=/etc/apt/sources.list.d/bookworm-backports.sources
if [ ! -e "$src" ] && ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
  say "adding bookworm-backports to $src"
  $SUDO tee "$src" >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
  -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
say "installed lavapipe: mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)"
