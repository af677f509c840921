"""alert actions from Slack: action_targets, action_target_alerts, alert_actions

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08 10:00:00

What a Slack message's buttons act on (one incident of one alert group), which alerts it
holds, and every action taken on it (acknowledge, silence, unsilence, chart), keyed so a
redelivered or doubly received action is applied once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def _schema() -> str | None:
    # see 0003: the schema a schema_translate_map names, which the inspector does not apply
    return (op.get_bind().get_execution_options().get("schema_translate_map") or {}).get(None)


def upgrade() -> None:
    schema = _schema()
    # a database made by ``metadata.create_all`` and adopted at 0001 may have them already
    present = set(sa.inspect(op.get_bind()).get_table_names(schema=schema))
    if 'action_targets' not in present:
        op.create_table(
            'action_targets',
            sa.Column('id', sa.String(length=40), nullable=False),
            sa.Column('receiver', sa.String(length=200), nullable=False),
            sa.Column('group_key', sa.String(length=200), nullable=False),
            sa.Column('incident', sa.String(length=200), nullable=False),
            sa.Column('group_labels', sa.Text(), nullable=False),
            sa.Column('alerts', sa.Text(), nullable=False),
            sa.Column('channel', sa.String(length=64), nullable=True),
            sa.Column('ts', sa.String(length=32), nullable=True),
            sa.Column('created_at', sa.Double(), nullable=False),
            sa.Column('updated_at', sa.Double(), nullable=False),
            sa.Column('resolved_at', sa.Double(), nullable=True),
            sa.Column('acked_by', sa.String(length=200), nullable=True),
            sa.Column('acked_by_id', sa.String(length=64), nullable=True),
            sa.Column('acked_at', sa.Double(), nullable=True),
            sa.Column('ack_action', sa.String(length=64), nullable=True),
            sa.PrimaryKeyConstraint('id', name=op.f('pk_action_targets')),
            schema=schema,
        )
        op.create_index('ix_action_targets_group_key', 'action_targets', ['group_key'],
                        unique=False, schema=schema)
    if 'action_target_alerts' not in present:
        op.create_table(
            'action_target_alerts',
            sa.Column('target_id', sa.String(length=40), nullable=False),
            sa.Column('fingerprint', sa.String(length=64), nullable=False),
            sa.Column('rule', sa.String(length=200), nullable=False),
            sa.PrimaryKeyConstraint('target_id', 'fingerprint',
                                    name=op.f('pk_action_target_alerts')),
            schema=schema,
        )
        op.create_index('ix_action_target_alerts_fingerprint', 'action_target_alerts',
                        ['fingerprint'], unique=False, schema=schema)
        op.create_index('ix_action_target_alerts_rule', 'action_target_alerts', ['rule'],
                        unique=False, schema=schema)
    if 'alert_actions' not in present:
        op.create_table(
            'alert_actions',
            sa.Column('key', sa.String(length=64), nullable=False),
            sa.Column('target_id', sa.String(length=40), nullable=False),
            sa.Column('action', sa.String(length=16), nullable=False),
            sa.Column('arg', sa.String(length=32), nullable=False),
            sa.Column('user_id', sa.String(length=64), nullable=False),
            sa.Column('user_name', sa.String(length=200), nullable=False),
            sa.Column('source', sa.String(length=32), nullable=False),
            sa.Column('requested_at', sa.Double(), nullable=False),
            sa.Column('state', sa.String(length=16), nullable=False),
            sa.Column('outcome', sa.Text(), nullable=False),
            sa.Column('silence_ids', sa.Text(), nullable=False),
            sa.Column('claimed_by', sa.String(length=200), nullable=True),
            sa.Column('claim_expires', sa.Double(), nullable=True),
            sa.Column('finished_at', sa.Double(), nullable=True),
            sa.PrimaryKeyConstraint('key', name=op.f('pk_alert_actions')),
            schema=schema,
        )
        op.create_index('ix_alert_actions_target_id', 'alert_actions',
                        ['target_id', 'requested_at'], unique=False, schema=schema)


def downgrade() -> None:
    schema = _schema()
    op.drop_index('ix_alert_actions_target_id', table_name='alert_actions', schema=schema)
    op.drop_table('alert_actions', schema=schema)
    op.drop_index('ix_action_target_alerts_rule', table_name='action_target_alerts',
                  schema=schema)
    op.drop_index('ix_action_target_alerts_fingerprint', table_name='action_target_alerts',
                  schema=schema)
    op.drop_table('action_target_alerts', schema=schema)
    op.drop_index('ix_action_targets_group_key', table_name='action_targets', schema=schema)
    op.drop_table('action_targets', schema=schema)
