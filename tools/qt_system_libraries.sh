#!/bin/sh
# The system libraries Qt's window (the xcb platform plugin, OpenGL, fonts) needs on Debian and
# Ubuntu, which PySide6's wheels do not carry. Run by `make install` (so by `make run` and
# `make test`): installs what is missing when it can (root, or sudo without a password), and
# otherwise prints the exact apt line and stops. Elsewhere (macOS, other distributions) it does nothing.
set -eu
command -v dpkg-query >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 || exit 0

PACKAGES="libegl1 libgl1 libfontconfig1 libfreetype6 libdbus-1-3 libxkbcommon0 libxkbcommon-x11-0
libx11-xcb1 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0
libxcb-shape0 libxcb-shm0 libxcb-sync1 libxcb-xfixes0 libxcb-xinerama0 libxcb-xkb1"

installed() {  # a package, or (Ubuntu 24.04's 64-bit time names) the same package with a t64 suffix
    for name in "$1" "${1}t64"; do
        case "$(dpkg-query -W -f='${Status}' "$name" 2>/dev/null)" in *"install ok installed"*) return 0 ;; esac
    done
    return 1
}

missing=""
for p in $PACKAGES; do
    installed "$p" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo"
else
    echo "Quantdesk's window needs these system libraries, which are not installed:$missing" >&2
    echo "Install them, then run make again:" >&2
    echo "    sudo apt-get install -y$missing" >&2
    exit 1
fi
echo "Installing the system libraries Qt needs:$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
