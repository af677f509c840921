#!/usr/bin/env bash
# MLServer 1.7.1 + mlserver-sklearn in its own virtualenv under $MLWARDEN_PEERS/mlserver
# (its pins clash with the agent's own). The iris model is trained by the tests at run
# time, so nothing else is downloaded here. Idempotent; safe to run concurrently (flock).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
peers=${MLWARDEN_PEERS:-$repo/.peers}
dest=$peers/mlserver
version=1.7.1
mkdir -p "$peers"
exec 9>"$peers/.mlserver.lock"
flock 9
if [ -x "$dest/bin/mlserver" ] && "$dest/bin/python" -c "import mlserver, mlserver_sklearn, sklearn; assert mlserver.__version__ == '$version'" 2>/dev/null; then
  echo "mlserver ready in $dest/bin"; exit 0
fi
# uv resolves and installs MLServer in seconds; fall back to pip when uv is missing.
uv=""
if command -v uv >/dev/null 2>&1; then uv=$(command -v uv)
elif [ -x "$peers/uv/bin/uv" ]; then uv=$peers/uv/bin/uv
else
  python3 -m venv "$peers/uv" && "$peers/uv/bin/pip" install -q uv && uv=$peers/uv/bin/uv || uv=""
fi
rm -rf "$dest"
if [ -n "$uv" ]; then
  "$uv" venv -q --python python3 "$dest"
  VIRTUAL_ENV=$dest "$uv" pip install -q "mlserver==$version" "mlserver-sklearn==$version"
else
  python3 -m venv "$dest"
  "$dest/bin/pip" install -q "mlserver==$version" "mlserver-sklearn==$version"
fi
"$dest/bin/python" -c "import mlserver, mlserver_sklearn, sklearn" \
  || { echo "mlserver: the install does not import" >&2; exit 1; }
echo "mlserver ready in $dest/bin"
