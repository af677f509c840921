"""The daemon tunes glibc's malloc and trims it; /status says what was done."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import textwrap

import pytest

from agent import allocator
from agent.allocator import MemoryTrimmer

GLIBC = allocator._glibc() is not None


@pytest.mark.skipif(not GLIBC, reason="malloc tuning applies to glibc only (this libc is not glibc)")
def test_tune_malloc_sets_the_options_unless_the_operator_set_them():
    # in a child process: mallopt changes the process for good
    code = textwrap.dedent("""
        import json
        from agent.allocator import tune_malloc
        print(json.dumps(tune_malloc()))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    got = json.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                    text=True, check=True, timeout=60).stdout)
    assert got == {"allocator": "glibc", "arena_max": 2, "mmap_threshold": 262144}
    got = json.loads(subprocess.run([sys.executable, "-c", code], env={**env, "MALLOC_ARENA_MAX": "4"},
                                    capture_output=True, text=True, check=True, timeout=60).stdout)
    assert got == {"allocator": "glibc", "arena_max": "4 (from MALLOC_ARENA_MAX)", "mmap_threshold": 262144}


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
async def test_the_trimmer_gives_freed_heap_back_and_counts_it():
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    # 32 MiB in small blocks (below any mmap threshold), then all freed: held by malloc
    blocks = [libc.malloc(64 * 1024 - 64) for _ in range(512)]
    for block in blocks:
        ctypes.memset(block, 1, 64 * 1024 - 64)  # touched, so resident
    pin = libc.malloc(64)  # above them: free() alone cannot shrink the heap past it
    for block in blocks:
        libc.free(block)
    trimmer = MemoryTrimmer(every=3600)
    try:
        assert trimmer.trim() is True  # released the free pages in the middle of the heap
    finally:
        libc.free(pin)
    assert trimmer.status()["trims"] == 1 and trimmer.status()["trims_that_released"] == 1
    await trimmer.start()  # the periodic task starts and stops cleanly
    await trimmer.stop()


def test_status_says_when_the_allocator_was_not_tuned():
    status = MemoryTrimmer().status()
    assert "allocator" in status and status["trims"] == 0
