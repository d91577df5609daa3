#!/bin/sh
# Install Debian's headless Chromium for the Playwright end-to-end tests (tests/e2e), and
# axe-core from npm for their accessibility checks (tests/e2e/node_modules).
# Idempotent: does nothing when both are there. Playwright's own browser download is not
# used because CI and the dev machines have no access to its CDN.
set -eu
E2E="$(dirname "$0")/../tests/e2e"
install_axe() {
    if [ -f "$E2E/node_modules/axe-core/axe.min.js" ]; then
        echo "axe-core already installed in tests/e2e/node_modules"
    elif command -v npm >/dev/null 2>&1; then
        (cd "$E2E" && npm install --no-audit --no-fund --loglevel=error) \
            || echo "install-browser: npm install of axe-core failed; the accessibility checks will skip" >&2
    else
        echo "install-browser: no npm here; the accessibility checks (axe-core) will skip" >&2
    fi
}
if [ -x /usr/bin/chromium ]; then
    echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
    install_axe
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "install-browser: need root (or sudo) to apt-get install chromium; the e2e test will skip" >&2
        exit 0
    fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: no apt-get here; install Chromium at /usr/bin/chromium yourself (the e2e test skips without it)" >&2
    exit 0
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver
/usr/bin/chromium --version
install_axe
