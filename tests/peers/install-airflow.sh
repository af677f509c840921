#!/usr/bin/env bash
# Apache Airflow 3.x and 2.10 from PyPI, each in its own virtualenv under
# $MLWARDEN_PEERS/airflow3 and $MLWARDEN_PEERS/airflow2, pinned by the lock files beside
# this script (Airflow's constraint files live on a host the test machines cannot reach).
# `uv` (from PyPI, in its own venv) resolves in seconds where pip takes minutes.
# Idempotent (a stamp holds the lock file it installed) and safe to run concurrently (flock).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
peers=${MLWARDEN_PEERS:-$repo/.peers}
py=${PYTHON:-python3}
mkdir -p "$peers"
exec 9>"$peers/.airflow.lock"
flock 9
uvenv=$peers/uv
if ! [ -x "$uvenv/bin/uv" ]; then
  "$py" -m venv "$uvenv"
  "$uvenv/bin/pip" install -q uv
fi
uv=$uvenv/bin/uv
for v in 3 2; do
  dest=$peers/airflow$v
  lock=$here/requirements-airflow$v.lock
  if [ -f "$dest/.installed" ] && cmp -s "$dest/.installed" "$lock" && [ -x "$dest/bin/airflow" ]; then
    continue
  fi
  start=$(date +%s)
  rm -rf "$dest"
  "$uv" venv -q --python "$py" "$dest"
  "$uv" pip install -q --python "$dest/bin/python" -r "$lock"
  # a bare `import airflow` creates ~/airflow: point it at a throwaway home
  AIRFLOW_HOME=$(mktemp -d) "$dest/bin/python" -c "import airflow; print('airflow', airflow.__version__)" \
    || { echo "airflow$v: the installed Airflow does not import" >&2; exit 1; }
  cp "$lock" "$dest/.installed"
  echo "airflow$v installed in $(( $(date +%s) - start ))s"
done
echo "airflow ready in $peers/airflow3 and $peers/airflow2"
