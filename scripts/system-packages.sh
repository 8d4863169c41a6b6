#!/usr/bin/env bash
# The Debian/Ubuntu packages the GUI and browser tests need: Xvfb + Mesa + Qt's xcb
# libraries (napari under a virtual display), Chromium (the browser tests), Node.js/npm
# (the browser runtime from the npm registry).
#
#   scripts/system-packages.sh          install what is missing (as root, or with sudo)
#   scripts/system-packages.sh --check  only say what is missing
#
# Used by `make install` (so `make demo` and `make test` work on a fresh machine) and by
# .ci/run. Without root or sudo it prints the apt-get command and exits 0: the tests
# that need a missing package then skip and say why.
set -euo pipefail
PKGS=(xvfb xauth libgl1 libegl1 libgl1-mesa-dri libxkbcommon-x11-0
      libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0
      libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libfontconfig1 libdbus-1-3
      chromium fonts-dejavu-core)
command -v dpkg-query >/dev/null 2>&1 || { echo "system-packages: not a Debian/Ubuntu system; install the equivalents of: ${PKGS[*]} nodejs npm"; exit 0; }
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -eq 0 ]; then
  echo "system-packages: all present"; exit 0
fi
if [ "${1:-}" = "--check" ]; then
  echo "system-packages: missing ${missing[*]}"; exit 0
fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo"; else
  echo "system-packages: missing ${missing[*]}"
  echo "  install them with: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}"
  echo "  (until then the GUI/browser tests skip and say why)"
  exit 0
fi
echo "system-packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
