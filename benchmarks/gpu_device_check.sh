#!/usr/bin/env bash
# One short run of the gpu check on a machine with an NVIDIA GPU (the lead's nvidia-h200 run).
#
# Before: download the wheels listed in benchmarks/gpu_wheels.txt into .whl/ (command there).
# Run:    device run: command "bash benchmarks/gpu_device_check.sh", carry [".whl"], timeout_s 300
# It takes about 1-2 minutes: installs mlwarden from this working tree with no network, prints
# nvidia-smi's view for comparison, runs `mlwarden check local-gpus` (table and --json) idle and
# under a short PyTorch load, the no-config default instance, and the NVML adapter and XID
# watcher directly. Every step is bounded by `timeout`; a failing step does not stop the rest.
set -uxo pipefail
exec 2>&1
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
SITE=/tmp/mlwarden-site
CFG=/tmp/mlwarden-gpu.yaml
CLI='import sys; from agent.cli import main; sys.exit(main(sys.argv[1:]))'

date -u; uname -m; $PY --version
nvidia-smi -L
nvidia-smi --query-gpu=index,uuid,name,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw,power.limit,clocks.sm,clocks.mem,mig.mode.current --format=csv
$PY -c 'import pynvml, importlib.metadata as m; print("nvidia-ml-py", m.version("nvidia-ml-py"))'

# -- install (no network): dependency wheels from .whl/, then mlwarden from this tree --------
rm -rf "$SITE" && mkdir -p "$SITE"
if compgen -G ".whl/*.whl" >/dev/null; then
  timeout 120 $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl || { echo "FAILED: installing .whl/*.whl"; exit 1; }
else
  echo "note: no .whl/ carried; relying on what the image has"
fi
export PYTHONPATH="$SITE"
if ! timeout 120 $PY -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir --target "$SITE" .; then
  # no usable build backend there: run from the tree, with a dist-info naming the entry points
  echo "note: pip could not build mlwarden here; running it from the working tree instead"
  mkdir -p "$SITE/mlwarden-0.0.0.dist-info"
  printf 'Metadata-Version: 2.1\nName: mlwarden\nVersion: 0.0.0\n' > "$SITE/mlwarden-0.0.0.dist-info/METADATA"
  sed -n '/^\[options.entry_points\]/,/^\[/p' setup.cfg | sed '1d;$d' \
    | sed -E 's/^([a-z._]+) =$/[\1]/; s/^ +//' > "$SITE/mlwarden-0.0.0.dist-info/entry_points.txt"
  export PYTHONPATH="$SITE:$PWD"
fi
$PY -c 'import importlib.metadata as m; print("mlwarden", m.version("mlwarden"), [e.name for e in m.entry_points(group="mlwarden.checks")])'

cat > "$CFG" <<'YAML'
agent:
  history: sqlite:////tmp/mlwarden-device.db
checks:
  - {type: gpu, name: local-gpus, source: nvml, price_per_gpu_hour: 4.10, idle_window: 30m, interval: 30s, timeout: 30s}
YAML

echo "===== mlwarden check local-gpus (idle GPU) ====="
timeout 60 $PY -c "$CLI" check local-gpus --config "$CFG"; echo "exit=$? (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)"
echo "===== mlwarden check local-gpus --json ====="
timeout 60 $PY -c "$CLI" check local-gpus --config "$CFG" --json; echo "exit=$?"

echo "===== under load: a PyTorch matmul loop for ~20 s in the background ====="
env -u PYTHONPATH timeout 60 $PY -c '
import time, torch
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
end = time.time() + 20
while time.time() < end:
    for _ in range(50):
        a @ a
    torch.cuda.synchronize()
' &
LOAD=$!
sleep 10
timeout 60 $PY -c "$CLI" check local-gpus --config "$CFG"; echo "exit=$?"
nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv
cat /proc/$LOAD/cgroup 2>/dev/null | head -3
wait $LOAD

echo "===== no config: the agent adds local-gpus by itself where a GPU is present ====="
timeout 60 $PY -c "$CLI" check local-gpus; echo "exit=$?"

echo "===== the NVML adapter and the XID watcher directly ====="
timeout 60 $PY - <<'PYEOF'
import time
from checks.gpu.presence import gpu_present
from checks.gpu.nvml import Nvml
from checks.gpu.xid import XidWatcher

t = time.perf_counter(); present = gpu_present(); t1 = time.perf_counter()
print(f"gpu_present() = {present} in {(t1 - t) * 1e6:.0f} us")
nvml = Nvml()
t = time.perf_counter(); count = nvml.start(); t1 = time.perf_counter()
print(f"nvmlInit + count = {count} GPU(s) in {(t1 - t) * 1e3:.1f} ms; driver {nvml.driver_version()}")
for attempt in range(3):
    t = time.perf_counter(); readings, lost = nvml.read(); t1 = time.perf_counter()
    print(f"read {attempt}: {len(readings)} reading(s), lost={lost}, {(t1 - t) * 1e3:.1f} ms")
for gpu in readings:
    print({k: v for k, v in vars(gpu).items() if v not in (None, "", {}, [])})
print("fields NVML refused:", nvml.field_errors or "none")
watcher = XidWatcher(nvml, poll_ms=200)
try:
    watcher.start()
    print("XID watcher running:", watcher.running, "refused:", watcher.refused or "none")
    time.sleep(1.0)
    print("XIDs in 1 s:", watcher.drain(), "error:", watcher.error)
finally:
    t = time.perf_counter(); watcher.stop(); print(f"watcher stopped in {(time.perf_counter() - t) * 1e3:.0f} ms")
    nvml.stop()
PYEOF
echo "exit=$?"
date -u
