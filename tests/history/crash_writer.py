"""A writer under load for the kill -9 test: feeds the store and logs each acknowledgement.

Run as ``python crash_writer.py DB_URL ACK_FILE BATCH_INTERVAL``. Each line of ACK_FILE is
``<last seq> <time.time()>`` written right after ``consume()`` accepted that batch; values
are the sequence numbers themselves, so the test can tell exactly which samples survived.
"""

from __future__ import annotations

import sys
import time

from agent.history.config import HistoryConfig
from agent.history.store import HistoryStore
from agent.samples import CheckResult, Sample, Status, make_tags


def main() -> None:
    url, ack_path, interval = sys.argv[1], sys.argv[2], float(sys.argv[3])
    store = HistoryStore(url, HistoryConfig(batch_interval=interval, batch_size=2000,
                                            maintenance_interval=3600))
    store.start_blocking()
    tags = [make_tags({"series": str(i)}) for i in range(50)]
    seq = 0
    deadline = time.monotonic() + 120  # bounded even if nobody kills us
    with open(ack_path, "w", buffering=1) as ack:
        while time.monotonic() < deadline:
            now = time.time()
            batch = []
            for t in tags:
                seq += 1
                batch.append(Sample("mlwarden.crash", float(seq), t, now))
            store.consume(CheckResult("crash", "crash", Status.OK, samples=batch))
            ack.write(f"{seq} {time.time():.6f}\n")
            time.sleep(0.02)  # ~2,500 samples/s: load the writer can sustain here


if __name__ == "__main__":
    main()
