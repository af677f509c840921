"""Every table the agent keeps, on one SQLAlchemy ``MetaData``.

All SQL lives behind these definitions; migrations (Alembic) are generated from them.
Times are UNIX epoch seconds as floats (``Double``) unless a column says otherwise;
JSON-shaped columns hold text written with ``json.dumps`` so SQLite and PostgreSQL store
the same bytes.

Owners: series/samples/rollups — the store's writer (agent.history.store);
rollup_progress — the rollup job (agent.history.rollups);
check_state — check cursors; alerts/alert_transitions — the rules engine;
outbox — notifications and exporter points awaiting delivery; silences — routing;
leases — leader election; action_targets/action_target_alerts/alert_actions — actions
taken on alerts from Slack (agent.slackapp.store); alert_links — which alert the cause
graph linked to which cause, and why (agent.alerting.causes).
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "metadata",
    "check_state",
    "alerts",
    "alert_transitions",
    "outbox",
    "silences",
    "leases",
    "action_targets",
    "action_target_alerts",
    "alert_actions",
    "alert_links",
    "series",
    "samples",
    "rollup_1m",
    "rollup_1h",
    "rollup_progress",
    "ROLLUPS",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Durable per-check state (cursors such as the last Airflow run already reported).
check_state = Table(
    "check_state",
    metadata,
    Column("check_name", String(200), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("value", Text, nullable=False),  # JSON
    Column("updated_at", Double, nullable=False),
)

# One row per alert (rule + label set): its current state, resumed after a restart.
alerts = Table(
    "alerts",
    metadata,
    Column("fingerprint", String(64), primary_key=True),
    Column("rule", String(200), nullable=False),
    Column("labels", Text, nullable=False),  # JSON object
    Column("annotations", Text, nullable=False, default="{}"),  # JSON object
    Column("state", String(16), nullable=False),  # inactive|pending|firing|resolved|flapping
    Column("severity", String(32), nullable=False, default="warning"),
    Column("value", Double),
    Column("active_since", Double),  # when the condition started holding (pending)
    Column("fired_at", Double),
    Column("resolved_at", Double),
    Column("last_eval", Double),
    Column("last_transition", Double),
    Column("transitions_window", Text, nullable=False, default="[]"),  # JSON list of times
    Column("agent", String(200)),
    Column("detail", Text, nullable=False, default="{}", server_default="{}"),  # JSON: rules' resume state
    Index("ix_alerts_state", "state"),
)

# Every state change of every alert, for `mlwarden alerts history` and audits.
alert_transitions = Table(
    "alert_transitions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fingerprint", String(64), nullable=False),
    Column("rule", String(200), nullable=False),
    Column("from_state", String(16), nullable=False),
    Column("to_state", String(16), nullable=False),
    Column("at", Double, nullable=False),
    Column("value", Double),
    Column("labels", Text, nullable=False, default="{}"),
    Index("ix_alert_transitions_rule_at", "rule", "at"),
)

# Anything awaiting delivery: Slack/Alertmanager notifications, Datadog points.
# A row is written before the send is attempted, so a crash or an outage loses nothing;
# ``dedup_key`` (unique) makes enqueueing the same notification twice a no-op; a row is
# claimed (pending -> sending, compare-and-set) before it is sent.
outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),  # notification|datadog_series|datadog_check|...
    Column("receiver", String(200), nullable=False),
    Column("dedup_key", String(200), nullable=True),
    Column("payload", Text, nullable=False),  # JSON
    Column("created_at", Double, nullable=False),
    Column("due_at", Double, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("state", String(16), nullable=False, default="pending"),  # pending|sending|sent|dead
    Column("last_error", Text),
    Column("sent_at", Double),
    Column("result", Text),  # JSON: e.g. the Slack channel id and ts of the posted message
    # who is sending a ``sending`` row, and until when: a row whose claimer died (its claim
    # expired) can be claimed again, so agents sharing the store never send one row twice
    Column("claimed_by", String(200)),
    Column("claim_expires", Double),
    UniqueConstraint("dedup_key"),
    Index("ix_outbox_due", "kind", "state", "due_at"),
    # a receiver's head and "nothing earlier unsettled" (the delivery's take): index probes
    Index("ix_outbox_queue", "kind", "receiver", "state", "id"),
)

# Silences (and maintenance windows): matchers over alert labels, for a time range.
silences = Table(
    "silences",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("matchers", Text, nullable=False),  # JSON list of {name, op, value}
    Column("starts_at", Double, nullable=False),
    Column("ends_at", Double, nullable=False),
    Column("created_by", String(200), nullable=False, default=""),
    Column("comment", Text, nullable=False, default=""),
    Column("created_at", Double, nullable=False),
    Column("expired_at", Double),
)

# Leader election: one row per lease, taken and renewed by compare-and-set.
leases = Table(
    "leases",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("renewed_at", Double, nullable=False),
    Column("generation", Integer, nullable=False, default=0),
)


# -- actions on alerts from Slack (owned by agent.slackapp.store) -----------------------
# What one alert message's buttons act on: one incident of one alert group as one receiver
# posted it. ``id`` is derived from (receiver, incident), so registering it again is an
# update; the acknowledgement is kept on the row (set once, compare-and-set).
action_targets = Table(
    "action_targets",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("receiver", String(200), nullable=False),
    Column("group_key", String(200), nullable=False),
    Column("incident", String(200), nullable=False),
    Column("group_labels", Text, nullable=False, default="{}"),  # JSON object
    Column("alerts", Text, nullable=False, default="[]"),  # JSON list: fingerprint, rule, labels
    Column("channel", String(64)),  # the posted message (channel ID and ts), once known
    Column("ts", String(32)),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("resolved_at", Double),
    Column("acked_by", String(200)),
    Column("acked_by_id", String(64)),
    Column("acked_at", Double),
    Column("ack_action", String(64)),  # the alert_actions key that acknowledged it
    Index("ix_action_targets_group_key", "group_key"),
)

# Which alerts a target holds, so the status page and `alerts history` find a target's
# acknowledgement and actions by fingerprint or rule.
action_target_alerts = Table(
    "action_target_alerts",
    metadata,
    Column("target_id", String(40), primary_key=True),
    Column("fingerprint", String(64), primary_key=True),
    Column("rule", String(200), nullable=False),
    Index("ix_action_target_alerts_fingerprint", "fingerprint"),
    Index("ix_action_target_alerts_rule", "rule"),
)

# Every action a person took (or was refused), keyed by an id derived from Slack's payload:
# a redelivered envelope or a second agent inserting the same key changes nothing. A row is
# claimed while it is applied; the claim expires so another agent can finish the action of
# an agent that died half-way.
alert_actions = Table(
    "alert_actions",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("target_id", String(40), nullable=False),
    Column("action", String(16), nullable=False),  # acknowledge|silence|unsilence|chart
    Column("arg", String(32), nullable=False, default=""),  # 1h|4h|resolved|24h
    Column("user_id", String(64), nullable=False),
    Column("user_name", String(200), nullable=False, default=""),
    Column("source", String(32), nullable=False),  # slack-socket|slack-http
    Column("requested_at", Double, nullable=False),
    Column("state", String(16), nullable=False),  # applying|done|refused
    Column("outcome", Text, nullable=False, default=""),
    Column("silence_ids", Text, nullable=False, default="[]"),  # JSON list
    Column("claimed_by", String(200)),
    Column("claim_expires", Double),
    Column("finished_at", Double),
    Index("ix_alert_actions_target_id", "target_id", "requested_at"),
)

# -- links between alerts (owned by agent.alerting.causes) ------------------------------
# Each time the dispatcher said an alert under its cause (or reported the link), once per
# effect, cause and start of the effect: ``id`` is derived from the three, so agents sharing
# the store and restarts insert it once. Labels are kept so the history reads without the
# ``alerts`` rows (which a later episode overwrites).
alert_links = Table(
    "alert_links",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("effect", String(64), nullable=False),  # fingerprint
    Column("effect_rule", String(200), nullable=False),
    Column("effect_labels", Text, nullable=False, default="{}"),  # JSON object
    Column("effect_kind", String(64), nullable=False, default=""),
    Column("effect_since", Double),
    Column("cause", String(64), nullable=False),  # fingerprint
    Column("cause_rule", String(200), nullable=False),
    Column("cause_labels", Text, nullable=False, default="{}"),  # JSON object
    Column("cause_kind", String(64), nullable=False, default=""),
    Column("cause_since", Double),
    Column("reason", Text, nullable=False, default=""),
    Column("receiver", String(200), nullable=False, default=""),
    Column("placement", String(16), nullable=False, default=""),  # grouped|paged|reported
    Column("at", Double, nullable=False),
    Index("ix_alert_links_effect_rule", "effect_rule", "at"),
    Index("ix_alert_links_cause_rule", "cause_rule", "at"),
)

# -- metric history (owned by agent.history.store) -------------------------------------
# One row per distinct series (metric + tag set). ``key`` is a stable hash of both, so a
# lookup never compares JSON text; ``tags`` is the canonical JSON object for display/filter.
series = Table(
    "series",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(40), nullable=False),  # sha1 hex of metric + canonical tags
    Column("metric", String(200), nullable=False),
    Column("tags", Text, nullable=False),  # JSON object, keys sorted
    Column("created_at", Double, nullable=False),
    UniqueConstraint("key"),
    Index("ix_series_metric", "metric"),
)

# Raw samples. Keyed on (series, time) with no rowid on SQLite: one B-tree ordered the way
# queries read it (one series over a time range), about half the bytes of a rowid table
# plus an index. A repeated (series, time) keeps the first value.
samples = Table(
    "samples",
    metadata,
    Column("series_id", Integer, primary_key=True, autoincrement=False),
    Column("ts", Double, primary_key=True),
    Column("value", Double, nullable=False),
    sqlite_with_rowid=False,
)


def _rollup(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("series_id", Integer, primary_key=True, autoincrement=False),
        Column("bucket", Double, primary_key=True),  # bucket start, epoch seconds
        Column("min", Double, nullable=False),
        Column("max", Double, nullable=False),
        Column("sum", Double, nullable=False),
        Column("count", Integer, nullable=False),
        sqlite_with_rowid=False,
    )


# Rollups: per series and bucket, enough to answer avg/min/max/sum/count at any coarser step.
rollup_1m = _rollup("rollup_1m")
rollup_1h = _rollup("rollup_1h")

# How far each rollup has folded its source: every source row older than ``done_until``
# is in the rollup, so a restart neither folds twice nor skips a bucket.
rollup_progress = Table(
    "rollup_progress",
    metadata,
    Column("resolution", String(16), primary_key=True),  # "1m" | "1h"
    Column("done_until", Double, nullable=False),
)

# resolution name -> (bucket seconds, table)
ROLLUPS = {"1m": (60, rollup_1m), "1h": (3600, rollup_1h)}
