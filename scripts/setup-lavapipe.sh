#!/usr/bin/env bash
# Installs Mesa's lavapipe software Vulkan driver so Dawn (npm `webgpu`) finds an adapter on a
# machine without a GPU. Debian bookworm ships Mesa 22.3, which lacks Vulkan features Dawn needs,
# so Mesa comes from bookworm-backports (25.x). Idempotent; needs root (or sudo).
# Sourcing this file only defines the functions (the tests call debian_archive_uri).

# Prints the archive URI of the first enabled `deb` source for Debian suite $1 (or $1-updates)
# found in the files $2...: deb822 *.sources stanzas or one-line `deb` entries. Backports come
# from that same archive, so a site mirror or proxy the machine already uses keeps working. The
# security archive and CD-ROM sources are skipped: they carry no backports.
debian_archive_uri() {
  local suite=$1 f found=""
  shift
  for f in "$@"; do
    [[ -f "$f" && -r "$f" ]] || continue
    if [[ "$f" == *.sources ]]; then
      found+=$(awk -v want="$suite" '
        function flush(  n, i, s, u) {
          sub(/^[ \t]+/, "", uris); sub(/^[ \t]+/, "", suites)   # a value may start on the next line
          n = split(suites, s, /[ \t]+/)
          for (i = 1; i <= n; i++)
            if ((s[i] == want || s[i] == want "-updates") && types ~ /(^|[ \t])deb([ \t]|$)/ && enabled != "no") {
              split(uris, u, /[ \t]+/); if (u[1] != "" && u[1] !~ /^cdrom:/) print u[1]; break
            }
          types = uris = suites = enabled = field = ""
        }
        /^[ \t]*#/ { next }                       # comments may sit inside a stanza
        /^[ \t]*$/ { flush(); next }              # a blank line ends a stanza
        /^[ \t]/ { v = $0; cont = 1 }          # a continuation line adds to the field above
        !/^[ \t]/ { field = tolower(substr($0, 1, index($0, ":") - 1)); v = substr($0, index($0, ":") + 1); cont = 0 }
        {
          gsub(/^[ \t]+|[ \t]+$/, "", v)
          if (field == "types") types = cont ? types " " v : v
          else if (field == "uris") uris = cont ? uris " " v : v
          else if (field == "suites") suites = cont ? suites " " v : v
          else if (field == "enabled") enabled = tolower(v)
        }
        END { flush() }
        ' "$f" | sed -n 1p)$'\n'
    else
      found+=$(awk -v want="$suite" '
        $1 == "deb" {
          line = $0; sub(/^[ \t]*deb[ \t]+/, "", line)
          if (substr(line, 1, 1) == "[") sub(/^\[[^\]]*\][ \t]*/, "", line)   # [options]
          split(line, w, /[ \t]+/)
          if ((w[2] == want || w[2] == want "-updates") && w[1] !~ /^cdrom:/) { print w[1]; exit }
        }' "$f")$'\n'
    fi
  done
  found=$(sed -n '/./{p;q}' <<<"$found")
  [[ -n "$found" ]] && printf '%s\n' "$found"
}

main() {
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
  local src=/etc/apt/sources.list.d/bookworm-backports.sources uri
  if [ ! -e "$src" ] && ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
    shopt -s nullglob
    if ! uri=$(debian_archive_uri bookworm /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources); then
      say "no enabled Debian bookworm source in /etc/apt/sources.list or /etc/apt/sources.list.d/: add bookworm-backports from your mirror by hand"
      exit 1
    fi
    say "adding bookworm-backports from $uri to $src"
    $SUDO tee "$src" >/dev/null <<SRC
Types: deb
URIs: $uri
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
}

# `return` succeeds only in a sourced file: sourced, nothing is installed.
if ! (return 0 2>/dev/null); then main "$@"; fi
