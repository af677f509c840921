"""The store inside the running agent, and its config section."""

from __future__ import annotations

import asyncio

import pytest

from agent.app import Agent
from agent.config import parse_config
from agent.errors import ConfigError
from agent.history.store import HistoryStore
from tests.support.procs import free_port


def test_history_section_is_validated_with_paths():
    with pytest.raises(ConfigError) as err:
        parse_config("history:\n  batch_interval: soon\n  retention: {raw: 1d, minutes: 30d}\n")
    text = str(err.value)
    assert "history.batch_interval: expected a duration like '15s'" in text
    assert "history.retention.minutes: unknown key (did you mean 'minute'?)" in text
    with pytest.raises(ConfigError, match="rollup_delay .* must be shorter than retention.raw"):
        parse_config("history:\n  rollup_delay: 2h\n  retention: {raw: 1h}\n")
    config = parse_config("history:\n  batch_size: 100\n  retention: {raw: 2d}\n")
    assert config.history.batch_size == 100 and config.history.retention.raw == 172800


async def test_agent_runs_with_the_store_as_component_sink_and_state(tmp_path):
    db = tmp_path / "agent.db"
    config = parse_config(f"agent:\n  history: sqlite:///{db}\n  listen: 127.0.0.1:{free_port()}\n"
                          "  self_check_interval: 1s\n"
                          "history:\n  batch_interval: 100ms\n  metrics_interval: 200ms\n")
    agent = Agent(config)
    store = agent.history
    assert isinstance(store, HistoryStore) and store in agent.components
    assert agent.context.state is store
    await agent.start()
    try:
        assert store in agent.pipeline.sinks
        await agent.context.state.set_state("agent", "cursor", {"n": 1})
        for _ in range(200):  # the self-check's samples and the store's own reach the disk
            found = await asyncio.to_thread(store.read_series, "mlwarden.agent.memory.rss", 0)
            own = await asyncio.to_thread(store.read_series, "mlwarden.history.queue_depth", 0)
            if found and own:
                break
            await asyncio.sleep(0.1)
        assert found, "no self-check sample reached the history store"
        assert own, "the store's own metrics did not go through the pipeline"
        assert agent.status()["components"]["history"]["written"] > 0
    finally:
        await agent.stop()
    again = HistoryStore(f"sqlite:///{db}")
    await again.start()
    try:
        assert await again.get_state("agent", "cursor") == {"n": 1}
    finally:
        await again.stop()
