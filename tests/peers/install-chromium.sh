#!/usr/bin/env bash
# Chromium and its chromedriver from Debian's packages, for the status page's browser tests
# (tests/web/). The two come from one source package, so their versions always match, and
# nothing is downloaded at test time. Installed system-wide (/usr/bin/chromium,
# /usr/bin/chromedriver): apt-get needs root, as in the CI image. Idempotent; safe to run
# concurrently (flock).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
peers=${MLWARDEN_PEERS:-$repo/.peers}
mkdir -p "$peers"
exec 9>"$peers/.chromium.lock"
flock 9
ready() { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] \
  && /usr/bin/chromium --headless --no-sandbox --version >/dev/null 2>&1 \
  && /usr/bin/chromedriver --version >/dev/null 2>&1; }
if ! ready; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null
    apt-get install -y -q --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
  }
fi
ready || { echo "chromium: /usr/bin/chromium or /usr/bin/chromedriver does not run" >&2; exit 1; }
echo "chromium ready: $(/usr/bin/chromium --version 2>/dev/null | head -1); $(/usr/bin/chromedriver --version | head -1)"
