#!/bin/sh
# Install the servers that tests start as throwaway instances (tests/services.py):
# PostgreSQL (the PostgreSQL store's tests) and Redis (shared serving state).
# Idempotent: installs only the packages that are missing; exits 0 with a message where
# it cannot install (not root and no sudo, or no apt-get), and those tests then skip.
set -eu
missing=""
if command -v dpkg-query >/dev/null 2>&1; then
    for pkg in postgresql redis-server; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            missing="$missing $pkg"
        fi
    done
else  # not Debian: the servers may come from elsewhere (Homebrew, Nix); look for them
    command -v pg_ctl >/dev/null 2>&1 || missing="$missing postgresql"
    command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
fi
if [ -z "$missing" ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-services: no apt-get here; install${missing} yourself (their tests skip without them)" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
        echo "install-services: need root (or sudo) to apt-get install${missing}; their tests will skip" >&2
        exit 0
    fi
fi
echo "install-services: installing${missing}"
$SUDO apt-get update -qq
# tests never use the servers the packages may start: they run their own in temporary folders
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
