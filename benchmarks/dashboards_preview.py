"""`mlwarden dashboards preview`: drawing the four shipped dashboards, beside the layout it
replaced, in one run.

The issue (#18) measured the whole command at 14.6 s on a quickstart agent's history: the
time went to matplotlib, with axes (ticks, labels) for every panel, "no data" ones included,
and ``tight_layout`` measuring every text once more. The preview now gives axes only to
panels with a time series and places cells on a fixed grid. Both layouts draw the same
panel data here (the agent-health dashboard with data in most panels, as after a quickstart
run, the three others empty), interleaved, so the ratio holds on a loaded machine.

    python benchmarks/dashboards_preview.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import io
import math
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from agent.dashboards.preview import _format, draw_panels  # noqa: E402
from agent.dashboards.spec import AGENT, DASHBOARDS  # noqa: E402


def panel_data(now: float) -> list[tuple[str, list]]:
    """Per dashboard: (title, [(panel, lines)]); a 6 h window at 90 s buckets (240 points)."""
    out = []
    for dash in DASHBOARDS:
        panels = []
        for n, panel in enumerate(p for row in dash.rows for p in row.panels if p.viz != "note"):
            lines = {}
            if dash is AGENT and n % 5 != 4:  # most of the agent's own panels have data
                points = [(now - 21600 + 90 * i, 1.0 + math.sin(i / 10)) for i in range(240)]
                lines = {"check=agent": points, "check=other": [(t, v * 2) for t, v in points]}
            panels.append((panel, lines))
        out.append((dash.title, panels))
    return out


def draw_before(title: str, panels, *, since: float, until: float, columns: int = 3) -> bytes:
    """The layout before #18: axes for every panel and tight_layout (kept here to compare)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import dates as mdates
    from matplotlib.figure import Figure

    rows = max(1, math.ceil(len(panels) / columns))
    fig = Figure(figsize=(5.0 * columns, 2.6 * rows + 0.8), dpi=80)
    fig.suptitle(f"{title}  (preview from the local history store)", fontsize=14)
    for i, (panel, lines) in enumerate(panels):
        ax = fig.add_subplot(rows, columns, i + 1)
        ax.set_title(panel.title[:70], fontsize=9)
        if not lines or panel.viz in ("value", "table"):
            text = "no data" if not lines else _format(sum(p[-1][1] for p in lines.values()), panel.unit)
            ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        for label, points in sorted(lines.items()):
            xs = [datetime.fromtimestamp(t, timezone.utc) for t, _ in points]
            ax.plot(xs, [v for _, v in points], linewidth=1.0, label=label[:40])
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=timezone.utc))
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="best")
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    now = time.time()
    data = panel_data(now)
    draw_panels(*data[0], since=now - 21600, until=now)  # warm: imports, font cache
    times: dict[str, list[float]] = {"before": [], "now": []}
    for _ in range(args.rounds):
        for name in ("before", "now"):
            start = time.process_time()
            for title, panels in data:
                if name == "now":
                    draw_panels(title, panels, since=now - 21600, until=now)
                else:
                    draw_before(title, panels, since=now - 21600, until=now)
            times[name].append(time.process_time() - start)
    before, after = statistics.median(times["before"]), statistics.median(times["now"])
    print(f"4 dashboards, {sum(len(p) for _, p in data)} panels, CPU seconds (median of {args.rounds}):")
    print(f"  before (axes for every panel + tight_layout): {before:.2f} s")
    print(f"  now (axes only for charts, fixed grid):       {after:.2f} s")
    print(f"  ratio now/before: {after / before:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
