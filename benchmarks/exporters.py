"""Exporter costs, measured side by side in one run (the machine is shared and noisy).

1. /metrics render time of PrometheusExporter at 1,000 and 10,000 series against
   prometheus_client's own ``generate_latest`` over plain Gauges with the same names and
   labels (aim: ratio <= 1.2); the same in OpenMetrics, and with gzip; 1,000 histograms
   (12 buckets) against prometheus_client Histograms. The ratio is for a warm render (each
   series' line prefix already cached, as on every scrape after the first); the first, cold
   render is printed beside it. Left out: the scrape itself (HTTP, the worker thread) and
   renders at tens of thousands of series while checks run: benchmarks/agent_scale.py times
   /metrics scrapes of the running agent.
   A scrape of the running agent's shape at 5,000 ``model_endpoint`` checks (70,000
   series: 11 gauges, a counter and a latency histogram per check): between two scrapes
   every check reports again (its latencies, duration and run count change, its status
   gauges do not), as with checks every 10 s and scrapes every 15 s; each scrape is timed
   (OpenMetrics + gzip, what Prometheus asks for) against prometheus_client's
   ``generate_latest`` over the same series updated the same way (aim: < 150 ms). The
   body's gzip is then timed alone: ISA-L's level 1 (what /metrics uses) against stdlib
   zlib's level 1 (what it used before), over the same chunks, taking turns.
2. DogStatsD: cost per metric of ``DogStatsdExporter.consume`` with client-side buffering
   and packets per metric (aim: <= 5 us and <= 0.05 packets per metric), against the
   same exporter unbuffered (one packet per metric), and with a custom-metrics budget on
   (every point is checked against it). Datagrams go to a UDP socket on 127.0.0.1 that the
   benchmark drains, and to a Unix datagram socket. DD_ENV, DD_SERVICE and DD_VERSION are
   set, as in a pod.

Run: .venv/bin/python benchmarks/exporters.py [--scrape | --prometheus | --dogstatsd]  (only the
70k-series scrape; only the Prometheus part; only the DogStatsD part)

``--dogstatsd --baseline DIR [--rounds 60]``: the DogStatsD part side by side with another
checkout's exporter (e.g. a worktree of main): a process of each tree, taking turns a round
at a time (who goes first alternates), so both share the machine's load; it prints each
tree's best, median and quartiles per case, and the ratio of the medians.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import time

import gc
import gzip
import json
import zlib
import subprocess
from pathlib import Path


def _tree() -> Path:
    """The checkout whose exporters run: ``--tree DIR`` (a child of ``--baseline``) or this one."""
    if "--tree" in sys.argv:
        return Path(sys.argv[sys.argv.index("--tree") + 1]).resolve()
    return Path(__file__).resolve().parents[1]


sys.path.insert(0, str(_tree()))

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from agent.export.exposition import compress_chunks
from agent.export.config import DatadogConfig
from agent.export.datadog_statsd import DogStatsdExporter
from agent.export.prometheus import DEFAULT_BUCKETS, PrometheusExporter, label_name
from agent.samples import CheckResult, Kind, Sample, Status, make_tags

METRICS = ["mlwarden.endpoint.latency.ttfb", "mlwarden.endpoint.up", "mlwarden.gpu.utilization",
           "mlwarden.gpu.memory.used", "mlwarden.check.duration"]


def results(series: int, shift: float = 0.0) -> list[CheckResult]:
    """``series`` gauge series over 5 metrics, 20 per check instance, 4 labels each."""
    per_check = 20
    out = []
    for c in range(series // per_check):
        samples = []
        for j in range(per_check):
            tags = make_tags({"check": f"inst-{c}", "model": f"model-{j % 7}",
                              "endpoint": f"http://10.0.{c % 250}.{j}:8080", "env": "prod"})
            samples.append(Sample(METRICS[j % len(METRICS)], 0.001 * (c * per_check + j) + shift, tags, 1.0))
        # a long report interval: the benchmark's values must not go stale between its rounds
        out.append(CheckResult(f"inst-{c}", "model_endpoint", Status.OK, samples=samples, interval=3600))
    return out


_LAST_ROUND: dict[int, int] = {}


def changed_render(exporter: PrometheusExporter, rounds: list[list[CheckResult]],
                   openmetrics: bool = False):  # noqa: ANN201
    """The reports of a round in which every series changed, then a render (the renderer
    keeps what did not change, so a render of unchanged values would time its cache, not
    its formatting). The reports are timed with it: their lines are formatted as they
    arrive (issue #20), so the render alone would leave the formatting out. (The reference's
    own ``set``/``observe`` calls are not timed: this is against us.) ``rounds[0]`` is what
    the exporter holds to begin with."""
    def render() -> float:
        # the next round after the one this exporter last took (here or in another call)
        n = _LAST_ROUND[id(exporter)] = (_LAST_ROUND.get(id(exporter), 0) + 1) % len(rounds)
        t0 = time.perf_counter()
        for r in rounds[n]:
            exporter.consume(r)
        exporter.render(openmetrics)
        return time.perf_counter() - t0

    return render


def best_of(timed, repeat: int) -> float:
    return min(timed() for _ in range(repeat))


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_render(series: int) -> None:
    res = results(series)
    ours = PrometheusExporter()
    for r in res:
        ours.consume(r)
    registry = CollectorRegistry()
    gauges: dict[str, Gauge] = {}
    for r in res:
        for s in r.samples:
            name = ours._family(s.metric, 0)[0]
            keys = [label_name(k) for k, _ in s.tags]
            g = gauges.get(name)
            if g is None:
                g = gauges[name] = Gauge(name, "help", keys, registry=registry)
            g.labels(*[v for _, v in s.tags]).set(s.value)
    assert ours.series_count == series
    cold_started = time.perf_counter()
    ours.render()  # the first render builds the cached line prefixes
    cold = time.perf_counter() - cold_started
    repeat = 30 if series <= 1000 else 8
    rounds = []
    changing = changed_render(ours, [res, results(series, 0.5)])
    for _ in range(3):  # interleaved, so a noisy neighbour hits both sides
        a = best_of(changing, repeat)
        b = best(lambda: generate_latest(registry), repeat)
        rounds.append((a, b))
    a = min(r[0] for r in rounds)
    b = min(r[1] for r in rounds)
    same = min(best(ours.render, repeat) for _ in range(3))
    print(f"/metrics reports + render, {series:>6} series, every value changed: mlwarden {a * 1e3:7.2f} ms "
          f"({a / series * 1e6:5.2f} us/series) | generate_latest {b * 1e3:7.2f} ms "
          f"({b / series * 1e6:5.2f} us/series) | ratio {a / b:4.2f} (aim <= 1.2); "
          f"first (cold) render {cold * 1e3:.2f} ms; nothing changed {same * 1e3:.2f} ms")
    def feed() -> None:
        for r in res:
            ours.consume(r)

    sink = min(best(feed, repeat) for _ in range(3))
    print(f"   sink: consume {sink / series * 1e6:5.2f} us/sample (a poll's cost before any scrape)")
    om = min(best_of(changed_render(ours, [res, results(series, 0.5)], True), repeat) for _ in range(3))
    om_ref = min(best(lambda: generate_openmetrics(registry), repeat) for _ in range(3))
    body = ours.render()
    gz = min(best(lambda: gzip.compress(ours.render(), compresslevel=1, mtime=0), repeat) for _ in range(3))
    print(f"   OpenMetrics: mlwarden {om * 1e3:7.2f} ms | prometheus_client {om_ref * 1e3:7.2f} ms | "
          f"ratio {om / om_ref:4.2f};  text + gzip: {gz * 1e3:7.2f} ms ({gz / a:4.2f}x the render), "
          f"{len(body) / 1024:.0f} KiB -> {len(gzip.compress(body, 1)) / 1024:.0f} KiB")


def bench_histograms(series: int = 1000) -> None:
    """``series`` latency histograms (12 buckets, +Inf, sum, count: 15 lines each)."""
    ours = PrometheusExporter()
    registry = CollectorRegistry()
    ref = Histogram("mlwarden_endpoint_latency_seconds", "help", ["check", "model", "endpoint"],
                    buckets=DEFAULT_BUCKETS, registry=registry)
    more = []  # one more observation per histogram before each timed render
    for c in range(series):
        labels = {"check": f"inst-{c}", "model": f"model-{c % 7}", "endpoint": f"http://10.0.{c % 250}.1:8080"}
        samples = [Sample("mlwarden.endpoint.latency", 0.001 * (c % 500 + i), make_tags(labels),
                          1.0, Kind.DISTRIBUTION) for i in range(5)]
        ours.consume(CheckResult(f"inst-{c}", "model_endpoint", Status.OK, samples=samples, interval=3600))
        more.append(CheckResult(f"inst-{c}", "model_endpoint", Status.OK, samples=samples[:1],
                                interval=3600))
        child = ref.labels(*labels.values())
        for s in samples:
            child.observe(s.value)
    ours.render()
    ours.render()  # the first observations of new series land after a render at zero
    changing = changed_render(ours, [more])
    rounds = [(best_of(changing, 8), best(lambda: generate_latest(registry), 8)) for _ in range(3)]
    a, b = min(r[0] for r in rounds), min(r[1] for r in rounds)
    print(f"/metrics reports + render, {series:>6} histograms, each observed since: mlwarden {a * 1e3:7.2f} ms | generate_latest "
          f"{b * 1e3:7.2f} ms | ratio {a / b:4.2f}")


# what one model_endpoint check reports per run (names as in its check and the scheduler)
_STATIC = ("mlwarden.check.status", "mlwarden.endpoint.up", "mlwarden.endpoint.ready",
           "mlwarden.endpoint.http_status", "mlwarden.endpoint.versions_ready",
           "mlwarden.endpoint.workers", "mlwarden.endpoint.workers.ready",
           "mlwarden.endpoint.canary.success")
_MOVING = ("mlwarden.check.duration", "mlwarden.endpoint.latency.connect",
           "mlwarden.endpoint.latency.ttfb")


_CHECK_TAGS: dict[int, tuple] = {}


def agent_round(checks: int, n: int) -> list[CheckResult]:
    """Round ``n`` of ``checks`` model_endpoint runs: 14 series per check. A check's name
    and tag tuples are the same objects every run, as in the agent (``merged_tags``)."""
    out = []
    for c in range(checks):
        if c not in _CHECK_TAGS:
            _CHECK_TAGS[c] = (f"endpoint-{c}", make_tags({
                "check": f"endpoint-{c}", "check_type": "model_endpoint",
                "endpoint": f"http://127.0.0.1:18080/m/{c}", "model": f"model-{c % 50}",
                "env": "prod", "team": "ml-platform"}))
        name, tags = _CHECK_TAGS[c]
        info_tags = _CHECK_TAGS.setdefault(-1 - c, tags + (("version", "1"),))
        moving = 0.0005 + ((c * 7919 + n * 104729) % 1000) * 1e-6
        samples = [Sample(m, 1.0, tags) for m in _STATIC]
        samples += [Sample(m, moving * (i + 1), tags) for i, m in enumerate(_MOVING)]
        samples.append(Sample("mlwarden.endpoint.model.info", 1.0, info_tags))
        samples.append(Sample("mlwarden.check.runs", 1.0, tags, 0.0, Kind.COUNT))
        samples.append(Sample("mlwarden.endpoint.latency", moving, tags, 0.0, Kind.DISTRIBUTION))
        out.append(CheckResult(name, "model_endpoint", Status.OK, samples=samples, interval=3600))
    return out


def bench_agent_scrape(checks: int = 5000, rounds: int = 6) -> None:
    """Each round: every check reports again, then one scrape of each side is timed."""
    ours = PrometheusExporter()
    registry = CollectorRegistry()
    ref: dict[str, object] = {}

    def feed_ref(res: list[CheckResult]) -> None:
        for r in res:
            for s in r.samples:
                name = ours._family(s.metric, {Kind.GAUGE: 0, Kind.COUNT: 1}.get(s.kind, 2))[0]
                metric = ref.get(name)
                if metric is None:
                    keys = [label_name(k) for k, _ in s.tags]
                    if s.kind is Kind.GAUGE:
                        metric = Gauge(name, "help", keys, registry=registry)
                    elif s.kind is Kind.COUNT:
                        metric = Counter(name.removesuffix("_total"), "help", keys, registry=registry)
                    else:
                        metric = Histogram(name, "help", keys, buckets=DEFAULT_BUCKETS,
                                           registry=registry)
                    ref[name] = metric
                child = metric.labels(*[v for _, v in s.tags])
                if s.kind is Kind.GAUGE:
                    child.set(s.value)
                elif s.kind is Kind.COUNT:
                    child.inc(s.value)
                else:
                    child.observe(s.value)

    first = agent_round(checks, 0)
    for r in first:
        ours.consume(r)
    feed_ref(first)
    ours.render(True)  # the first scrape builds what is cached; first increments at zero
    series = ours.series_count
    gc.collect()
    gc.freeze()  # what lives long out of the collector's passes, as `mlwarden run` does
    ours_t, ref_t, plain_t, render_t = [], [], [], []
    body = b""
    for n in range(1, rounds + 1):
        res = agent_round(checks, n)
        t0 = time.perf_counter()
        for r in res:
            ours.consume(r)
        consume = time.perf_counter() - t0
        feed_ref(res)
        t0 = time.perf_counter()
        gz = ours._encoded(True, True)  # what a scrape asking for gzip gets
        ours_t.append(time.perf_counter() - t0)
        body = gzip.decompress(gz)
        t0 = time.perf_counter()
        ours.render(False)  # a scrape of the same values without gzip: joins only
        render_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        generate_openmetrics(registry)
        ref_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ours.render(False)  # a third scrape with nothing new in between
        plain_t.append(time.perf_counter() - t0)
    a, b = statistics.median(ours_t), statistics.median(ref_t)
    print(f"/metrics scrape, {checks} checks ({series} series, {len(body) / 1e6:.1f} MB, "
          f"{len(gz) / 1e6:.2f} MB gzip), every check reported since the last scrape: "
          f"mlwarden {a * 1e3:6.1f} ms (min {min(ours_t) * 1e3:.1f}; OpenMetrics + gzip; again without gzip "
          f"{statistics.median(render_t) * 1e3:.1f}) | "
          f"generate_latest {b * 1e3:6.1f} ms (OpenMetrics, no gzip) | ratio {a / b:4.2f} "
          f"(aim < 150 ms); nothing new since the last scrape: {statistics.median(plain_t) * 1e3:.1f} ms; "
          f"consume {consume / (checks * 14) * 1e6:.2f} us/sample")
    chunks = list(ours._chunks(True))
    isal_t, zlib_t = [], []
    for _ in range(7):  # the two compressors take turns over the same chunks
        t0 = time.perf_counter()
        small = compress_chunks(chunks)
        isal_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        z = zlib.compressobj(1, zlib.DEFLATED, 31)
        big = b"".join([z.compress(c) for c in chunks] + [z.flush()])
        zlib_t.append(time.perf_counter() - t0)
    a, b = statistics.median(isal_t), statistics.median(zlib_t)
    print(f"   gzip of that body alone: ISA-L level 1 {a * 1e3:5.1f} ms ({len(small) / 1e6:.2f} MB) | "
          f"zlib level 1 {b * 1e3:5.1f} ms ({len(big) / 1e6:.2f} MB) | ratio {a / b:4.2f}")


class Drain:
    """Receives and counts datagrams in a separate process (a thread here would fight the
    sender for the GIL and inflate its cost by the interpreter's switch interval)."""

    def __init__(self, path: str | None = None) -> None:
        if path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.sock.bind(path)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.parent, child = multiprocessing.Pipe()
        self.proc = multiprocessing.Process(target=_drain, args=(self.sock, child), daemon=True)
        self.proc.start()
        self.packets = 0

    def close(self) -> None:
        self.parent.send("stop")
        self.packets = self.parent.recv()
        self.proc.join(5)
        self.sock.close()


def _drain(sock: socket.socket, conn) -> None:  # noqa: ANN001
    sock.settimeout(0.1)
    packets = 0
    while not conn.poll():
        try:
            while True:
                sock.recv(65536)
                packets += 1
        except OSError:
            continue
    conn.recv()
    conn.send(packets)


class DogStatsdRun:
    """One DogStatsD case: an exporter sending to a drained socket, timed a round at a time
    (a round: 1,000 metrics consumed, then a flush). ``agent``: the agent's shape instead:
    72 ``model_endpoint`` checks' results (14 series of every kind, 6-7 tags; 1,008 metrics
    a round), latencies changing between rounds, and each result's service check on (as
    by default)."""

    def __init__(self, label: str, buffering: bool, unix: bool, packet: int | None = None,
                 budget: int | None = None, agent: bool = False) -> None:
        self.label = label
        self.turns = [agent_round(72, n) for n in range(3)] if agent else [results(1000)]
        self.metrics = sum(len(r.samples) for r in self.turns[0])
        path = os.path.join(tempfile.mkdtemp(), "dsd.sock") if unix else None
        self.drain = Drain(path)
        cfg = DatadogConfig(host="127.0.0.1", port=self.drain.sock.getsockname()[1] if not unix else 8125,
                            socket=path, buffering=buffering, service_checks=agent,
                            max_packet_size=packet, flush_interval=10, custom_metrics_budget=budget)
        self.exp = DogStatsdExporter(cfg, telemetry_interval=3600)
        self.rounds = 0
        self.costs: list[float] = []
        if agent:  # an uncounted round: the series' first, as in the running agent
            self.round()
            self.costs.clear()

    def round(self) -> float:
        res = self.turns[self.rounds % len(self.turns)]
        self.rounds += 1
        t0 = time.perf_counter()
        for r in res:
            self.exp.consume(r)
        self.exp.flush()
        self.costs.append((time.perf_counter() - t0) / self.metrics)
        return self.costs[-1]

    def close(self) -> dict[str, object]:
        sent = self.exp.statsd.sent_so_far
        dropped = self.exp.statsd.dropped_so_far
        time.sleep(0.5)
        self.exp.statsd.close_socket()
        self.exp.statsd.stop()
        self.drain.close()
        metrics = self.metrics * self.rounds
        return {"label": self.label, "costs": self.costs, "sent": sent / metrics,
                "received": self.drain.packets / metrics, "dropped": dropped}


def bench_dogstatsd(*case: object) -> None:
    run = DogStatsdRun(*case)  # type: ignore[arg-type]
    for _ in range(20):
        run.round()
    got = run.close()
    costs = got["costs"]
    print(f"DogStatsD {run.label:<30}: best {min(costs) * 1e6:5.2f} us/metric, median "
          f"{statistics.median(costs) * 1e6:5.2f} | {got['sent']:.4f} packets/metric sent, "
          f"{got['received']:.4f} received, {got['dropped']} dropped")


def bench_client_floor() -> None:
    """The datadog client's own cost per buffered gauge, for scale (our consume wraps it)."""
    from datadog.dogstatsd.base import DogStatsd

    from agent.export.tags import dd_tags

    drain = Drain()
    client = DogStatsd(host="127.0.0.1", port=drain.sock.getsockname()[1], disable_buffering=False,
                       flush_interval=10, telemetry_min_flush_interval=3600,
                       origin_detection_enabled=False)
    items = [(s.metric, s.value, dd_tags(s.tags)) for r in results(1000) for s in r.samples]

    def send() -> None:
        gauge = client.gauge
        for m, v, t in items:
            gauge(m, v, tags=t)
        client.flush()

    cost = best(send, 20) / len(items)
    client.close_socket()
    client.stop()
    drain.close()
    print(f"DogStatsD {'client alone (datadog.gauge)':<30}: best {cost * 1e6:5.2f} us/metric")


DOGSTATSD_CASES = [  # label, buffering, Unix socket, packet size, budget, the agent's shape
    ("UDP buffered (1432 B, remote)", True, False, 1432, None, False),
    ("UDP buffered (8192 B, default)", True, False, None, None, False),
    ("UDP buffered + budget (8192 B)", True, False, None, 100_000, False),
    ("Unix socket buffered (8192 B)", True, True, None, None, False),
    ("UDP unbuffered", False, False, None, None, False),
    ("agent's shape + service checks", True, False, None, None, True),
]


def dogstatsd_side_by_side(baseline: str, rounds: int) -> None:
    """A process of this tree and one of ``baseline`` run each case's rounds in turn, one
    round each at a time (who goes first alternates), so a burst of load from the machine's
    other tenants hits both sides alike."""
    trees = {"this": Path(__file__).resolve().parents[1], "baseline": Path(baseline).resolve()}
    if not (trees["baseline"] / "agent").is_dir():
        raise SystemExit(f"--baseline {trees['baseline']}: not a checkout of the agent")
    procs = {name: subprocess.Popen([sys.executable, __file__, "--serve", "--tree", str(tree)],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for name, tree in trees.items()}

    def tell(name: str, command: str) -> None:
        procs[name].stdin.write(command + "\n")  # type: ignore[union-attr]
        procs[name].stdin.flush()  # type: ignore[union-attr]

    def answer(name: str) -> str:
        line = procs[name].stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise SystemExit(f"the {name} process ended early (its error is above)")
        return line

    load = os.getloadavg()
    print(f"DogStatsD side by side, {rounds} rounds a case and tree, taking turns; "
          f"load average {load[0]:.2f} at the start")
    for i, case in enumerate(DOGSTATSD_CASES):
        for name in procs:
            tell(name, f"case {i}")
        for name in procs:
            answer(name)
        for r in range(rounds):
            for name in (("this", "baseline") if r % 2 == 0 else ("baseline", "this")):
                tell(name, "round")
                answer(name)
        for name in procs:
            tell(name, "end")
        got = {name: json.loads(answer(name)) for name in procs}
        row = {}
        for name in ("baseline", "this"):
            g = got[name]
            row[name] = statistics.median(g["costs"])
            print(f"  {case[0]:<30} {name:>8}: best {min(g['costs']) * 1e6:5.2f} us/metric, median "
                  f"{row[name] * 1e6:5.2f} (quartiles {statistics.quantiles(g['costs'])[0] * 1e6:.2f}-"
                  f"{statistics.quantiles(g['costs'])[2] * 1e6:.2f}) | {g['sent']:.4f} packets/metric, "
                  f"{g['dropped']} dropped", flush=True)
        print(f"  {case[0]:<30} this / baseline (medians): {row['this'] / row['baseline']:.2f}x", flush=True)
    for name in procs:
        tell(name, "quit")
        procs[name].wait(60)
    end = os.getloadavg()
    print(f"load average {load[0]:.2f} -> {end[0]:.2f}")


def serve() -> None:
    """A process of dogstatsd_side_by_side: one command a line on stdin, one answer a line."""
    import agent.export.datadog_statsd as ours
    assert Path(ours.__file__).resolve().is_relative_to(_tree()), ours.__file__
    run = None
    for line in sys.stdin:
        command = line.split()
        if command[0] == "case":
            run = DogStatsdRun(*DOGSTATSD_CASES[int(command[1])])
            print("ready", flush=True)
        elif command[0] == "round":
            print(run.round(), flush=True)  # type: ignore[union-attr]
        elif command[0] == "end":
            print(json.dumps(run.close()), flush=True)  # type: ignore[union-attr]
        else:
            return


def main() -> None:
    args = sys.argv[1:]
    if args == ["--scrape"]:  # only the 70k-series scrape
        bench_agent_scrape()
        return
    for var, value in (("DD_ENV", "prod"), ("DD_SERVICE", "ml-platform"), ("DD_VERSION", "1.4.2")):
        os.environ.setdefault(var, value)
    if "--serve" in args:
        serve()
        return
    if "--baseline" in args:
        rounds = int(args[args.index("--rounds") + 1]) if "--rounds" in args else 60
        dogstatsd_side_by_side(args[args.index("--baseline") + 1], rounds)
        return
    if args != ["--dogstatsd"]:
        print("== Prometheus /metrics render vs prometheus_client.generate_latest (same names and labels)")
        bench_render(1000)
        bench_render(10000)
        bench_histograms()
        bench_agent_scrape()
        if args == ["--prometheus"]:
            return
    print("== DogStatsD exporter, 1,000 metrics per round, 4 tags each (~130-byte lines)")
    for case in DOGSTATSD_CASES:
        bench_dogstatsd(*case)
    bench_client_floor()
    print("   aims: <= 5 us/metric and <= 0.05 packets/metric with buffering (unbuffered: 1 packet/metric)")


if __name__ == "__main__":
    main()
