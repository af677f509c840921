#!/usr/bin/env bash
# Chromium and its chromedriver from Debian's packages, for the status page's browser tests
# (tests/web/test_page_browser.py drives /usr/bin/chromium with Playwright; chromedriver,
# built from the same source package, is there for Selenium and for debugging by hand).
# Nothing is downloaded at test time. Installed system-wide: apt-get needs root, as in
# the CI image. Idempotent; safe to run concurrently (flock, and apt's own lock waited for).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
peers=${MLWARDEN_PEERS:-$repo/.peers}
mkdir -p "$peers"
exec 9>"$peers/.chromium.lock"
flock 9
pkgs=(chromium chromium-driver fonts-dejavu-core)
ready() { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] \
  && /usr/bin/chromium --headless --no-sandbox --version >/dev/null 2>&1 \
  && /usr/bin/chromedriver --version >/dev/null 2>&1; }
if ! ready; then
  if [ "$(id -u)" != 0 ]; then
    echo "chromium: not installed, and installing it needs root: apt-get install ${pkgs[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt=(apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${pkgs[@]}")
  "${apt[@]}" >/dev/null 2>&1 || { apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null; "${apt[@]}" >/dev/null; }
fi
ready || { echo "chromium: /usr/bin/chromium or /usr/bin/chromedriver does not run" >&2; exit 1; }
echo "chromium ready: $(/usr/bin/chromium --version 2>/dev/null | head -1); $(/usr/bin/chromedriver --version | head -1)"
