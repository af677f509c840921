"""initial schema: history and shared coordination tables

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-28 16:22:28.060794
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alert_transitions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('rule', sa.String(length=200), nullable=False),
    sa.Column('from_state', sa.String(length=16), nullable=False),
    sa.Column('to_state', sa.String(length=16), nullable=False),
    sa.Column('at', sa.Double(), nullable=False),
    sa.Column('value', sa.Double(), nullable=True),
    sa.Column('labels', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_transitions'))
    )
    with op.batch_alter_table('alert_transitions', schema=None) as batch_op:
        batch_op.create_index('ix_alert_transitions_rule_at', ['rule', 'at'], unique=False)

    op.create_table('alerts',
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('rule', sa.String(length=200), nullable=False),
    sa.Column('labels', sa.Text(), nullable=False),
    sa.Column('annotations', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('severity', sa.String(length=32), nullable=False),
    sa.Column('value', sa.Double(), nullable=True),
    sa.Column('active_since', sa.Double(), nullable=True),
    sa.Column('fired_at', sa.Double(), nullable=True),
    sa.Column('resolved_at', sa.Double(), nullable=True),
    sa.Column('last_eval', sa.Double(), nullable=True),
    sa.Column('last_transition', sa.Double(), nullable=True),
    sa.Column('transitions_window', sa.Text(), nullable=False),
    sa.Column('agent', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('fingerprint', name=op.f('pk_alerts'))
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index('ix_alerts_state', ['state'], unique=False)

    op.create_table('check_state',
    sa.Column('check_name', sa.String(length=200), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('check_name', 'key', name=op.f('pk_check_state'))
    )
    op.create_table('leases',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('holder', sa.String(length=200), nullable=False),
    sa.Column('expires_at', sa.Double(), nullable=False),
    sa.Column('renewed_at', sa.Double(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_leases'))
    )
    op.create_table('outbox',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('receiver', sa.String(length=200), nullable=False),
    sa.Column('dedup_key', sa.String(length=200), nullable=True),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('created_at', sa.Double(), nullable=False),
    sa.Column('due_at', sa.Double(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('sent_at', sa.Double(), nullable=True),
    sa.Column('result', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('dedup_key', name=op.f('uq_outbox_dedup_key'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_due', ['kind', 'state', 'due_at'], unique=False)

    op.create_table('rollup_1h',
    sa.Column('series_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('bucket', sa.Double(), nullable=False),
    sa.Column('min', sa.Double(), nullable=False),
    sa.Column('max', sa.Double(), nullable=False),
    sa.Column('sum', sa.Double(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('series_id', 'bucket', name=op.f('pk_rollup_1h')),
    sqlite_with_rowid=False
    )
    op.create_table('rollup_1m',
    sa.Column('series_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('bucket', sa.Double(), nullable=False),
    sa.Column('min', sa.Double(), nullable=False),
    sa.Column('max', sa.Double(), nullable=False),
    sa.Column('sum', sa.Double(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('series_id', 'bucket', name=op.f('pk_rollup_1m')),
    sqlite_with_rowid=False
    )
    op.create_table('rollup_progress',
    sa.Column('resolution', sa.String(length=16), nullable=False),
    sa.Column('done_until', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('resolution', name=op.f('pk_rollup_progress'))
    )
    op.create_table('samples',
    sa.Column('series_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('ts', sa.Double(), nullable=False),
    sa.Column('value', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('series_id', 'ts', name=op.f('pk_samples')),
    sqlite_with_rowid=False
    )
    op.create_table('series',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=40), nullable=False),
    sa.Column('metric', sa.String(length=200), nullable=False),
    sa.Column('tags', sa.Text(), nullable=False),
    sa.Column('created_at', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_series')),
    sa.UniqueConstraint('key', name=op.f('uq_series_key'))
    )
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.create_index('ix_series_metric', ['metric'], unique=False)

    op.create_table('silences',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('matchers', sa.Text(), nullable=False),
    sa.Column('starts_at', sa.Double(), nullable=False),
    sa.Column('ends_at', sa.Double(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('created_at', sa.Double(), nullable=False),
    sa.Column('expired_at', sa.Double(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_silences'))
    )


def downgrade() -> None:
    op.drop_table('silences')
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.drop_index('ix_series_metric')

    op.drop_table('series')
    op.drop_table('samples')
    op.drop_table('rollup_progress')
    op.drop_table('rollup_1m')
    op.drop_table('rollup_1h')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_due')

    op.drop_table('outbox')
    op.drop_table('leases')
    op.drop_table('check_state')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index('ix_alerts_state')

    op.drop_table('alerts')
    with op.batch_alter_table('alert_transitions', schema=None) as batch_op:
        batch_op.drop_index('ix_alert_transitions_rule_at')

    op.drop_table('alert_transitions')
