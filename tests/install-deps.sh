#!/bin/sh
# Installs, on Debian, what the test suite uses and a fresh machine may
# lack: g++ (the C++ tests) and pkg-config (the install test).  It names the
# packages before installing them, installs nothing that is present, and
# needs root (or sudo).  gcc's sanitizer runtimes come with gcc itself.
set -eu
missing=
command -v g++ >/dev/null 2>&1 || missing="$missing g++"
command -v pkg-config >/dev/null 2>&1 || missing="$missing pkg-config"
if [ -z "$missing" ]; then
    echo "tests/install-deps.sh: nothing to install"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "tests/install-deps.sh: no apt-get; install by hand:$missing (the tests needing them skip)" >&2
    exit 0
fi
sudo=
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "tests/install-deps.sh: not root and no sudo; install by hand:$missing (the tests needing them skip)" >&2
        exit 0
    fi
    sudo=sudo
fi
echo "tests/install-deps.sh: about to install with apt-get:$missing"
# shellcheck disable=SC2086
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y $missing ||
    { $sudo apt-get update && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y $missing; }
