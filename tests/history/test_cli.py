"""`mlwarden history query|series|plot` on a real database, in every output format."""

from __future__ import annotations

import csv
import io
import json

import pytest

from agent.cli import main
from agent.history import migrations
from agent.history.config import HistoryConfig
from agent.history.store import HistoryStore

from .helpers import result_of, sample


@pytest.fixture
def db(db_url):
    import time

    now = time.time()
    store = HistoryStore(db_url, HistoryConfig(batch_interval=0.05))
    store.start_blocking()
    store.consume(result_of(*[sample("mlwarden.endpoint.latency", i / 100, now - 3600 + i * 15,
                                     model=m) for i in range(240) for m in ("ranker", "scorer")]))
    assert store.flush()
    store.stop_blocking()
    return db_url


def test_query_json_by_tag_and_step(db, capsys):
    assert main(["history", "query", "mlwarden.endpoint.latency", "--db", db, "--since", "2h",
                 "--tag", "model=ranker", "--step", "10m", "--agg", "max", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["resolution"] == "1m" and doc["step"] == 600 and doc["agg"] == "max"
    assert [s["tags"] for s in doc["series"]] == [{"model": "ranker"}]
    points = doc["series"][0]["points"]
    assert 6 <= len(points) <= 7 and all(t % 600 == 0 for t, _ in points)
    assert points[-1][1] == pytest.approx(2.39)  # the newest sample is the max of its bucket


def test_query_csv_has_every_raw_point(db, capsys):
    assert main(["history", "query", "mlwarden.endpoint.latency", "--db", db, "--since", "2h",
                 "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 480
    assert {r["series"] for r in rows} == {"model=ranker", "model=scorer"}
    assert float(rows[0]["value"]) == 0.0


def test_query_table_and_p95(db, capsys):
    assert main(["history", "query", "mlwarden.endpoint.latency", "--db", db, "--since", "2h",
                 "--step", "1h", "--agg", "p95", "--tag", "model=scorer"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0].split() == ["SERIES", "TIME", "(UTC)", "VALUE"]
    assert "from raw data, step 1h p95" in captured.err


def test_series_lists_metric_and_tags(db, capsys):
    assert main(["history", "series", "mlwarden.endpoint", "--db", db, "--format", "json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert sorted(s["tags"]["model"] for s in got) == ["ranker", "scorer"]
    assert main(["history", "series", "mlwarden.nothing", "--db", db]) == 1


def test_plot_writes_a_png(db, tmp_path, capsys):
    out = tmp_path / "chart.png"
    assert main(["history", "plot", "mlwarden.endpoint.latency", "--db", db, "--since", "2h",
                 "-o", str(out), "--threshold", "2"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "2 series, 480 points (raw data)" in capsys.readouterr().out


def test_plot_of_a_metric_with_no_data_writes_nothing_and_fails(db, tmp_path, capsys):
    out = tmp_path / "chart.png"
    assert main(["history", "plot", "mlwarden.endpoint.up", "--db", db, "--since", "2h",
                 "-o", str(out)]) == 1
    assert not out.exists()
    assert "no series of mlwarden.endpoint.up" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["--since", "yesterday"], "expected a duration like '15s'"),
    (["--tag", "model"], "--tag 'model': expected KEY=VALUE"),
])
def test_bad_arguments_say_what_is_wrong(db, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(["history", "query", "mlwarden.endpoint.latency", "--db", db, *argv])
    assert exc.value.code == 64  # a usage error, never a check status
    assert message in capsys.readouterr().err


def test_missing_database_is_reported_not_created(tmp_path, capsys):
    path = tmp_path / "none.db"
    with pytest.raises(SystemExit):
        main(["history", "series", "--db", f"sqlite:///{path}"])
    assert f"no history database at sqlite:///{path}" in capsys.readouterr().err
    assert not path.exists()


def test_no_matching_series_is_exit_1(db, capsys):
    assert main(["history", "query", "mlwarden.endpoint.latency", "--db", db,
                 "--tag", "model=none"]) == 1
    assert "no series of mlwarden.endpoint.latency match" in capsys.readouterr().err


def test_migrate_creates_then_reports_current(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'new.db'}"
    head = migrations.head_revision()
    assert main(["history", "migrate", "--db", url]) == 0
    assert f"{url}: schema (empty) -> {head}" in capsys.readouterr().out
    assert main(["history", "migrate", "--db", url]) == 0
    assert f"schema already at {head}" in capsys.readouterr().out
