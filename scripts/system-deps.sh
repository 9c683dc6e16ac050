#!/usr/bin/env bash
# System packages the tests need: Debian chromium + chromedriver (report rendering test).
# Installed only when missing; needs root (as on the project's machines and CI).
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "system-deps: chromium/chromedriver missing and not root; install the Debian packages" \
         "'chromium chromium-driver' or the browser test will be skipped" >&2
    exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
