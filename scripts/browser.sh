#!/usr/bin/env bash
# Debian's Chromium and ChromeDriver, for the live page's browser test (make test).
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "[browser] missing chromium: run once as root: sudo apt-get install -y chromium chromium-driver" >&2
  exit 1
fi
echo "[browser] installing chromium and chromium-driver from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
