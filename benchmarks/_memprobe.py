"""Run ``mlwarden run`` with its memory watched from inside, for the soak's ``--memory-profile``.

RSS alone cannot say whether growth is Python objects, SQLite's page cache or the C
allocator holding freed memory; this launcher records all three every ``MEMPROBE_EVERY``
seconds as JSON lines in ``MEMPROBE_OUT`` and, at each record, the Python allocation sites
that grew most since the first record taken after ``MEMPROBE_WARMUP`` seconds (with
``MEMPROBE_FRAMES`` > 0: tracemalloc costs CPU and memory, so RSS is then not the agent's).

    MEMPROBE_OUT=mem.jsonl python benchmarks/_memprobe.py run --config agent.yaml
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import json
import os
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _libc() -> Any:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _Mallinfo2
        return libc
    except (OSError, AttributeError):
        return None


def _sqlite() -> Any:
    name = ctypes.util.find_library("sqlite3")
    try:  # the same shared library _sqlite3 loaded, so the same process-wide counters
        lib = ctypes.CDLL(name) if name else None
        if lib is not None:
            lib.sqlite3_memory_used.restype = ctypes.c_int64
            lib.sqlite3_memory_highwater.restype = ctypes.c_int64
        return lib
    except (OSError, AttributeError):
        return None


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _pymalloc() -> dict[str, int]:
    """Python's small-object allocator, whose arenas malloc's counters do not see."""
    import tempfile

    with tempfile.TemporaryFile("w+") as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read()
    stats: dict[str, int] = {}
    for line in text.splitlines():
        for key, name in (("# arenas allocated current", "arenas"), ("# bytes in allocated blocks", "in_use"),
                          ("# bytes in available blocks", "free_blocks")):
            if line.startswith(key):
                stats[name] = int(line.split("=")[1].replace(",", ""))
    stats["arena_bytes"] = stats.get("arenas", 0) * 2**20  # 1 MiB arenas on 64-bit CPython 3.10+
    return stats


def watch(out: Path, every: float, warmup: float) -> None:
    libc, sqlite = _libc(), _sqlite()
    t0 = time.monotonic()
    base: tracemalloc.Snapshot | None = None
    with out.open("a") as f:
        while True:
            time.sleep(every)
            t = time.monotonic() - t0
            current, peak = tracemalloc.get_traced_memory()
            rec: dict[str, Any] = {"t": round(t, 1), "rss": _rss(), "traced": current, "traced_peak": peak,
                                   "threads": threading.active_count(), "gc_objects": len(gc.get_objects()),
                                   "pymalloc": _pymalloc()}
            if libc is not None:
                m = libc.mallinfo2()
                rec["malloc"] = {"arena": m.arena, "mmap": m.hblkhd, "in_use": m.uordblks, "free": m.fordblks}
            if sqlite is not None:
                rec["sqlite"] = sqlite.sqlite3_memory_used()
            if tracemalloc.is_tracing() and t >= warmup:
                snap = tracemalloc.take_snapshot().filter_traces(
                    [tracemalloc.Filter(False, tracemalloc.__file__)])
                if base is None:
                    base = snap
                else:
                    top = snap.compare_to(base, "traceback")[:12]
                    rec["growth"] = [{"bytes": s.size_diff, "count": s.count_diff,
                                      "where": [f"{fr.filename.replace(str(REPO) + '/', '')}:{fr.lineno}"
                                                for fr in s.traceback][-6:]} for s in top]
            f.write(json.dumps(rec) + "\n")
            f.flush()


def main() -> None:
    out = Path(os.environ.get("MEMPROBE_OUT", "memprobe.jsonl"))
    every = float(os.environ.get("MEMPROBE_EVERY", "30"))
    warmup = float(os.environ.get("MEMPROBE_WARMUP", "120"))
    frames = int(os.environ.get("MEMPROBE_FRAMES", "0"))  # 0: counters only, RSS undistorted
    if frames:
        tracemalloc.start(frames)
    threading.Thread(target=watch, args=(out, every, warmup), name="memprobe", daemon=True).start()
    sys.path.insert(0, str(REPO))
    from agent.cli import main as cli_main

    sys.exit(cli_main(sys.argv[1:]))


if __name__ == "__main__":
    main()
