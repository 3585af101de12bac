#!/usr/bin/env bash
# Make a headless Chromium available for the HTML report's browser test (Debian's package).
set -euo pipefail
if command -v chromium > /dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "Chromium is missing: install Debian's 'chromium' package to run the browser test" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends chromium > /dev/null 2>&1 || {
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium > /dev/null
}
