"""The agent image: its size (what a node pulls and keeps) and its start-up, each beside a floor.

Size. The base (Debian minbase + python3), the agent image and the GPU variant, pushed to an OCI
layout uncompressed and gzip-compressed (what a registry holds and a node pulls); the biggest
layers named from the image's history; inside the virtualenv, what each distribution weighs and
how much of it is there only for charts (matplotlib and what nothing else needs). The base is
the floor: what any Python image costs before the agent.

Start-up. `mlwarden run` with the image's own starter config, from the entrypoint's exec to the
first 200 from /readyz, in a container (tests/image/container.py: its own namespaces and a
chroot of the image's root, as `docker start` does) against the same starter config run from
this checkout's virtualenv, alternated, timed by the same poller; also the container's whole
`docker run` (container made and mounted, then started), and each agent's RSS once ready.

Needs buildah and root (tests/peers/install-buildah.sh); builds the images first through
deploy/build-image.sh --base debian, cached in $MLWARDEN_PEERS/buildah like the tests'.

    python benchmarks/image.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.image.container import Container, buildah  # noqa: E402
from tests.support.procs import PEERS, free_port  # noqa: E402

TAG = "localhost/mlwarden-bench:image"
BASE = "localhost/mlwarden-base:{suite}"
MB = 1e6

POLLER = """
import sys, time, urllib.request
url, deadline = sys.argv[1], time.monotonic() + 90
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            if r.status == 200:
                print(time.monotonic()); sys.exit(0)
    except OSError:
        pass
    time.sleep(0.01)
sys.exit(1)
"""

# per distribution: bytes on disk (its RECORD) and what it requires, to find what only charts need
SIZES = """
import json, os, re
from importlib import metadata
out = {}
for d in metadata.distributions():
    name = d.metadata["Name"].lower().replace("_", "-")
    size = 0
    for f in d.files or []:
        try:
            size += os.path.getsize(d.locate_file(f))
        except OSError:
            pass
    reqs = [re.split(r"[ ;<>=!~\\[(]", r, 1)[0].lower().replace("_", "-")
            for r in (d.requires or []) if "extra ==" not in r]
    out[name] = {"size": size, "requires": reqs}
print(json.dumps(out))
"""


def build() -> None:
    cmd = [str(REPO / "deploy" / "build-image.sh"), "--base", "debian", "--tag", TAG]
    bundle = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
    if bundle.is_file():
        cmd += ["--ca-bundle", str(bundle)]
    t0 = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"build failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    print(f"images built (cached layers reused) in {time.monotonic() - t0:.0f} s")


def layer_sizes(image: str, tmp: Path) -> list[tuple[int, int]]:
    """(uncompressed, gzip) bytes of each layer, from the image pushed to an OCI layout."""
    dest = tmp / "oci"
    shutil.rmtree(dest, ignore_errors=True)
    buildah("push", "--quiet", "--format", "oci", image, f"oci:{dest}:x", timeout=600)
    blobs = dest / "blobs" / "sha256"
    index = json.loads((dest / "index.json").read_text())
    manifest = json.loads((blobs / index["manifests"][0]["digest"].split(":")[1]).read_text())
    out = []
    for layer in manifest["layers"]:
        with gzip.open(blobs / layer["digest"].split(":")[1]) as f:
            raw = sum(len(chunk) for chunk in iter(lambda: f.read(1 << 20), b""))
        out.append((raw, layer["size"]))
    return out


def history(image: str) -> list[str]:
    """What made each non-empty layer, in order."""
    doc = json.loads(buildah("inspect", "--type", "image", image))
    made = [h.get("created_by", "") for h in doc["Docker"]["history"] if not h.get("empty_layer")]
    return [" ".join(m.replace("/bin/sh -c #(nop) ", "").split())[:90] for m in made]


def sizes(images: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = {label: layer_sizes(image, Path(tmp)) for label, image in images.items()}
    base_raw = sum(r for r, _g in next(iter(rows.values())))
    print(f"\n{'image':<28}{'uncompressed':>14}{'gzip (pull)':>14}{'x base':>9}")
    for label, layers in rows.items():
        raw, gz = sum(r for r, _g in layers), sum(g for _r, g in layers)
        print(f"{label:<28}{raw / MB:>11.1f} MB{gz / MB:>11.1f} MB{raw / base_raw:>8.2f}x")
    print("\nlayers of the agent image, biggest first:")
    for (raw, gz), what in sorted(zip(rows["agent"], history(images["agent"])), reverse=True)[:4]:
        print(f"  {raw / MB:7.1f} MB ({gz / MB:5.1f} MB gzip)  {what}")


def venv_weights(image: str, log_dir: Path) -> None:
    with Container(image, "sizes", log_dir, command=["python", "-c", SIZES]) as once:
        once.wait(timeout=120)
        text = once.output().strip().splitlines()[-1]
    dists = json.loads(text)

    def closure(names: list[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(names)
        while todo:
            n = todo.pop()
            if n in dists and n not in seen:
                seen.add(n)
                todo += dists[n]["requires"]
        return seen

    top = [r for r in dists["mlwarden"]["requires"] if r != "matplotlib"]
    charts = closure(["matplotlib"]) - closure(top) - {"mlwarden"}
    total = sum(d["size"] for d in dists.values())
    charts_size = sum(dists[n]["size"] for n in charts)
    print(f"\nthe virtualenv: {total / MB:.1f} MB in {len(dists)} distributions; biggest:")
    for name, d in sorted(dists.items(), key=lambda kv: -kv[1]["size"])[:8]:
        print(f"  {d['size'] / MB:6.1f} MB  {name}{'  (charts only)' if name in charts else ''}")
    print(f"charts only (matplotlib and what nothing else needs: {', '.join(sorted(charts))}): "
          f"{charts_size / MB:.1f} MB = {100 * charts_size / total:.0f} % of the virtualenv")


def _poll(url: str, netns_pid: int | None = None) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-c", POLLER, url]
    if netns_pid is not None:
        cmd = ["nsenter", f"--target={netns_pid}", "--net", "--", *cmd]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def _ready_at(poller: subprocess.Popen[str]) -> float:
    out, _ = poller.communicate(timeout=120)
    if poller.returncode != 0:
        raise RuntimeError("not ready within 90 s")
    return float(out.strip())


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS:")).split()[1]) / 1024


def start_in_container(image: str, log_dir: Path) -> tuple[float, float, float]:
    """(entrypoint exec to /readyz, the whole `docker run`, RSS MiB)."""
    t0 = time.monotonic()
    container = Container(image, "startup", log_dir)
    try:
        container.start()
        while True:  # the container's network exists once its PID 1 does
            try:
                pid = container.pid
                break
            except AssertionError:
                time.sleep(0.005)
        ready = _ready_at(_poll("http://127.0.0.1:9464/readyz", pid))
        return ready - container.started_at, ready - t0, _rss_mib(pid)
    finally:
        container.stop()


def start_from_checkout(log_dir: Path) -> tuple[float, float]:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "mlwarden.yaml"
        config.write_text((REPO / "agent/data/agent.yaml.example").read_text())
        exe = Path(sys.executable).with_name("mlwarden")
        poller = _poll(f"http://127.0.0.1:{port}/readyz")
        t0 = time.monotonic()
        proc = subprocess.Popen([str(exe), "run", "-c", str(config), "--listen", f"127.0.0.1:{port}"],
                                cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            ready = _ready_at(poller)
            return ready - t0, _rss_mib(proc.pid)
        finally:
            proc.terminate()
            proc.wait(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--suite", default="bookworm", help="the Debian base build-image.sh makes")
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("buildah") is None:
        raise SystemExit("needs root and buildah: run tests/peers/install-buildah.sh first")
    os.environ["CONTAINERS_STORAGE_CONF"] = str(PEERS / "buildah" / "storage.conf")
    os.environ.setdefault("BUILDAH_ISOLATION", "chroot")
    build()
    images = {"base (Debian + python3)": BASE.format(suite=args.suite), "agent": TAG, "gpu": f"{TAG}-gpu"}
    sizes(images)
    with tempfile.TemporaryDirectory() as tmp:
        log_dir = Path(tmp)
        venv_weights(TAG, log_dir)
        inside, whole, checkout, rss_in, rss_out = [], [], [], [], []
        for _ in range(args.rounds):
            t, r = start_from_checkout(log_dir)
            checkout.append(t)
            rss_out.append(r)
            t, w, r = start_in_container(TAG, log_dir)
            inside.append(t)
            whole.append(w)
            rss_in.append(r)
    i, c = statistics.median(inside), statistics.median(checkout)
    print(f"\nstart-up to /readyz, starter config, median of {args.rounds}: container {i:.2f} s "
          f"(whole `docker run` {statistics.median(whole):.2f} s), checkout {c:.2f} s, ratio {i / c:.2f}x")
    print(f"RSS once ready: container {statistics.median(rss_in):.1f} MiB, "
          f"checkout {statistics.median(rss_out):.1f} MiB")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
