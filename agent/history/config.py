"""Config models of the ``history:`` section (the database URL itself is ``agent.history``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent.durations import Duration

__all__ = ["HistoryConfig", "RetentionConfig"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetentionConfig(_Model):
    """How long each resolution is kept; older rows are deleted in bounded chunks."""

    raw: Duration = Field(7 * 86400.0, gt=0, description="Raw samples (as collected).")
    minute: Duration = Field(30 * 86400.0, gt=0, description="1-minute rollups (min/max/sum/count).")
    hour: Duration = Field(400 * 86400.0, gt=0, description="1-hour rollups (min/max/sum/count).")

    def for_resolution(self, name: str) -> float:
        return {"raw": self.raw, "1m": self.minute, "1h": self.hour}[name]


class HistoryConfig(_Model):
    """How the history store writes, rolls up and forgets samples."""

    retention: RetentionConfig = Field(
        default_factory=RetentionConfig, description="How long each resolution is kept."
    )
    batch_size: int = Field(
        5000, ge=1, le=100_000,
        description="Samples written per transaction at most (one executemany).",
    )
    batch_interval: Duration = Field(
        1.0, gt=0, le=60,
        description="Longest a sample waits before it is written; a kill -9 loses at most this much.",
    )
    queue_size: int = Field(
        200_000, ge=100,
        description="Samples held in memory while the writer is behind; beyond it new samples "
        "are shed, counted in mlwarden.history.samples_shed and logged.",
    )
    maintenance_interval: Duration = Field(
        60.0, gt=0, description="How often rollups are folded and retention is applied."
    )
    rollup_delay: Duration = Field(
        120.0, ge=0,
        description="A minute is folded into the rollups only this long after it ends, so "
        "late samples still count; samples arriving later than this miss the rollups.",
    )
    maintenance_chunk: int = Field(
        200, ge=1,
        description="Series per maintenance transaction; keeps each pause of the writer short.",
    )
    metrics_interval: Duration = Field(
        15.0, gt=0, description="How often the store reports its own metrics (mlwarden.history.*)."
    )

    @model_validator(mode="after")
    def _delay_below_retention(self) -> HistoryConfig:
        if self.rollup_delay >= self.retention.raw:
            raise ValueError(
                f"rollup_delay ({self.rollup_delay:g}s) must be shorter than retention.raw "
                f"({self.retention.raw:g}s), or raw samples are deleted before they are rolled up")
        return self
