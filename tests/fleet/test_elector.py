"""The elector as the agent uses it: gate, status, clean handover, and a leader cut off
from the database stepping down on its own clock before anyone else can take over."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent.check import CheckContext, InstanceConfig
from agent.config import parse_config
from agent.errors import ConfigError
from agent.history.db import make_engine
from agent.leader import Lease, LeaderConfig, LeaderElector, SoloLeadership, build_leadership
from checks.agent.check import AgentSelfCheck
from tests.support.procs import free_port

pytestmark = pytest.mark.integration


def _check(scope: str) -> AgentSelfCheck:
    return AgentSelfCheck(InstanceConfig(type="agent", name=f"c-{scope}", scope=scope))


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_one_elector_leads_and_the_other_gates_cluster_checks(pg_engine):
    cfg = LeaderConfig(lease_duration=20, renew_interval=5)
    a = LeaderElector(pg_engine, cfg, "node-a")
    b = LeaderElector(pg_engine, cfg, "node-b")
    await a.start()
    await b.start()
    try:
        assert a.is_leader and not b.is_leader
        assert a.gate(_check("cluster")) is None
        reason = b.gate(_check("cluster"))
        assert reason is not None and a.identity in reason
        assert b.gate(_check("local")) is None  # local checks run everywhere
        status_a, status_b = a.status(), b.status()
        assert status_a["is_leader"] is True and status_a["leader"] == a.identity
        assert status_a["term"] == 1 and status_a["leader_since"] is not None
        assert status_b["is_leader"] is False and status_b["leader"] == a.identity
        assert 0 < status_b["lease_expires_in"] <= 20
        assert a.identity.startswith("node-a/") and a.identity != b.identity
    finally:
        await b.stop()
        await a.stop()


async def test_a_clean_stop_releases_and_the_follower_takes_over_at_its_next_try(pg_engine):
    cfg = LeaderConfig(lease_duration=30, renew_interval=0.2)
    a = LeaderElector(pg_engine, cfg, "node-a")
    b = LeaderElector(pg_engine, cfg, "node-b")
    await a.start()
    await b.start()
    try:
        assert a.is_leader and not b.is_leader
        await a.stop()
        stopped = time.monotonic()
        for _ in range(100):
            if b.is_leader:
                break
            await asyncio.sleep(0.05)
        took = time.monotonic() - stopped
        assert b.is_leader, "the follower did not take over a released lease"
        assert took < cfg.lease_duration / 2, f"took {took:.2f}s: it waited for expiry"
        assert b.status()["term"] == 2
    finally:
        await b.stop()


async def test_a_leader_cut_off_from_the_database_steps_down_by_its_own_clock(pg_engine):
    clock = FakeMonotonic()
    cfg = LeaderConfig(lease_duration=10, renew_interval=5)
    a = LeaderElector(pg_engine, cfg, "node-a", monotonic=clock)
    await a.attempt(first=True)
    assert a.is_leader
    dead = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none")
    a.lease.engine = dead
    try:
        clock.now += 4
        await a.attempt()
        assert a.is_leader, "one failed renewal must not cost the lease"
        status = a.status()
        assert status["last_error"] and "OperationalError" in status["last_error"]
        clock.now += 6.01  # past lease_duration since the last renewal was *sent*
        assert not a.is_leader
        reason = a.gate(_check("cluster"))
        assert reason is not None and "leader" in reason
    finally:
        dead.dispose()
        a.lease.engine = pg_engine
        await a.stop()


async def test_followers_wake_at_the_lease_expiry_not_a_full_interval_later(pg_engine):
    clock = FakeMonotonic()
    a = LeaderElector(pg_engine, LeaderConfig(lease_duration=1.0, renew_interval=0.5), "node-a")
    b = LeaderElector(pg_engine, LeaderConfig(lease_duration=1.0, renew_interval=0.5), "node-b",
                      monotonic=clock)
    await a.attempt(first=True)
    await b.attempt(first=True)
    delay = b._next_delay()  # noqa: SLF001 - the wake-up rule is the handover bound
    assert 0.05 <= delay <= 0.5
    await asyncio.sleep(0.6)
    await b.attempt()
    assert 0.05 <= b._next_delay() <= 0.5  # noqa: SLF001
    await a.stop()
    await b.stop()


def test_sqlite_history_runs_every_check_locally(tmp_path):
    lead = build_leadership(f"sqlite:///{tmp_path}/h.db", LeaderConfig(), "node-a")
    assert isinstance(lead, SoloLeadership)
    assert lead.gate(_check("cluster")) is None
    assert lead.status() == {"enabled": False, "is_leader": True, "reason": lead.reason}


def test_postgres_history_gets_an_elector(pg_url):
    lead = build_leadership(pg_url, LeaderConfig(), "node-a")
    assert isinstance(lead, LeaderElector)
    lead.lease.engine.dispose()


def test_renew_interval_must_leave_room_for_a_missed_renewal():
    with pytest.raises(ConfigError) as err:
        parse_config("leader: {lease_duration: 4s, renew_interval: 3s}\n", source="fleet.yaml")
    text = str(err.value)
    assert "fleet.yaml" in text and "leader" in text and "renew_interval (3s)" in text


async def test_only_local_checks_carry_the_agent_tag():
    context = CheckContext(agent="node-a", agent_tags={"env": "prod"})
    local = AgentSelfCheck(InstanceConfig(type="agent", name="l"), context)
    cluster = AgentSelfCheck(InstanceConfig(type="agent", name="c", scope="cluster"), context)
    local_result, cluster_result = await local.run(), await cluster.run()
    assert local_result.samples and cluster_result.samples
    for sample in local_result.samples:
        assert sample.tag_dict == {"agent": "node-a", "env": "prod", "check": "l"}
    # a cluster check's series must stay the same series when another agent takes over
    for sample in cluster_result.samples:
        assert sample.tag_dict == {"env": "prod", "check": "c"}
    await context.close()


async def test_agents_without_cluster_checks_never_campaign(pg_engine):
    """A sidecar sharing the database must not win the lease and leave Airflow unpolled."""
    has_cluster = {"sidecar": False, "cluster": True}
    sidecar = LeaderElector(pg_engine, LeaderConfig(lease_duration=20, renew_interval=5), "sidecar",
                            candidate=lambda: has_cluster["sidecar"])
    cluster = LeaderElector(pg_engine, LeaderConfig(lease_duration=20, renew_interval=5), "cluster",
                            candidate=lambda: has_cluster["cluster"])
    await sidecar.attempt(first=True)  # first on a free lease, but not a candidate
    assert not sidecar.is_leader and sidecar.status()["leader"] is None
    assert sidecar.status()["candidate"] is False
    await cluster.attempt(first=True)
    assert cluster.is_leader
    await sidecar.attempt()
    assert sidecar.status()["leader"] == cluster.identity
    # a reload removes the cluster checks: the leader steps down and releases the lease
    has_cluster["cluster"] = False
    has_cluster["sidecar"] = True
    await cluster.attempt()
    assert not cluster.is_leader
    await sidecar.attempt()
    assert sidecar.is_leader, "the released lease should be free at once"
    await sidecar.stop()
    await cluster.stop()


async def test_the_database_password_never_reaches_status_or_logs(caplog):
    from agent.secrets import scrub

    url = f"postgresql+psycopg://mlwarden:s3cret-pw@127.0.0.1:{free_port()}/fleet"
    lead = build_leadership(url, LeaderConfig(lease_duration=4, renew_interval=2), "node-a",
                            candidate=lambda: True)
    assert isinstance(lead, LeaderElector)
    await lead.attempt(first=True)  # the database is down: logged, not raised
    await lead.stop()
    assert lead.status()["last_error"]
    assert "s3cret-pw" not in str(lead.status())
    assert "s3cret-pw" not in scrub(url)
    assert "s3cret-pw" not in "\n".join(scrub(r.getMessage()) for r in caplog.records)


def test_an_unsupported_database_is_a_clear_store_error():
    from agent.errors import StoreError

    with pytest.raises(StoreError, match="needs a PostgreSQL database.*mysql is not supported"):
        Lease(_FakeEngine("mysql"), "cluster", "node-a", duration=15)  # type: ignore[arg-type]


class _FakeEngine:
    """Just enough of an Engine to name its backend (no MySQL driver is installed here)."""

    def __init__(self, backend: str) -> None:
        from sqlalchemy.engine import make_url

        self.url = make_url(f"{backend}://u@127.0.0.1/x")


async def test_a_new_leader_runs_its_cluster_checks_at_once_not_at_their_next_slot():
    from agent.pipeline import Pipeline
    from agent.scheduler import CheckScheduler

    scheduler = CheckScheduler(Pipeline(maxsize=100))
    cluster = AgentSelfCheck(InstanceConfig(type="agent", name="c", scope="cluster", interval=3600))
    local = AgentSelfCheck(InstanceConfig(type="agent", name="l", interval=3600))
    scheduler.set_checks([cluster, local])
    scheduler.start()
    try:
        for _ in range(500):  # the first runs happen within a second of the start
            if all(s.runs for s in scheduler.states.values()):
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        runs = {name: s.runs for name, s in scheduler.states.items()}
        assert runs == {"c": 1, "l": 1}
        scheduler.run_now("cluster")
        for _ in range(100):
            if scheduler.states["c"].runs == 2:
                break
            await asyncio.sleep(0.02)
        assert scheduler.states["c"].runs == 2 and scheduler.states["l"].runs == 1
    finally:
        scheduler.shutdown()


async def test_the_election_reports_its_metrics_through_the_pipeline(pg_engine, catalog_check):
    results = []
    cfg = LeaderConfig(lease_duration=20, renew_interval=5)
    a = LeaderElector(pg_engine, cfg, "node-a", submit=results.append)
    b = LeaderElector(pg_engine, cfg, "node-b", submit=results.append)
    await a.attempt(first=True)
    await b.attempt(first=True)
    by_agent = {dict(r.samples[0].tags)["agent"]: r for r in results}
    for result in results:
        catalog_check(result)
    lead = {s.metric: s.value for s in by_agent["node-a"].samples}
    follow = {s.metric: s.value for s in by_agent["node-b"].samples}
    assert lead == {"mlwarden.leader.is_leader": 1.0, "mlwarden.leader.transitions": 1.0}
    assert follow == {"mlwarden.leader.is_leader": 0.0, "mlwarden.leader.transitions": 0.0}
    assert dict(by_agent["node-a"].samples[0].tags) == {"agent": "node-a", "lease": cfg.lease_name}
    assert by_agent["node-b"].message == f"follower of {a.identity}"
    await a.stop()
    await b.stop()
