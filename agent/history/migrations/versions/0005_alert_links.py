"""alert_links: which alert the cause graph linked to which cause, and why

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 12:30:00

One row per effect, cause and start of the effect, written by the dispatcher when it says an
alert under its cause (or reports the link): read by `mlwarden alerts history`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def _schema() -> str | None:
    # see 0003: the schema a schema_translate_map names, which the inspector does not apply
    return (op.get_bind().get_execution_options().get("schema_translate_map") or {}).get(None)


def upgrade() -> None:
    schema = _schema()
    # a database made by ``metadata.create_all`` and adopted at 0001 may have it already
    if 'alert_links' in set(sa.inspect(op.get_bind()).get_table_names(schema=schema)):
        return
    op.create_table(
        'alert_links',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('effect', sa.String(length=64), nullable=False),
        sa.Column('effect_rule', sa.String(length=200), nullable=False),
        sa.Column('effect_labels', sa.Text(), nullable=False),
        sa.Column('effect_kind', sa.String(length=64), nullable=False),
        sa.Column('effect_since', sa.Double(), nullable=True),
        sa.Column('cause', sa.String(length=64), nullable=False),
        sa.Column('cause_rule', sa.String(length=200), nullable=False),
        sa.Column('cause_labels', sa.Text(), nullable=False),
        sa.Column('cause_kind', sa.String(length=64), nullable=False),
        sa.Column('cause_since', sa.Double(), nullable=True),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('receiver', sa.String(length=200), nullable=False),
        sa.Column('placement', sa.String(length=16), nullable=False),
        sa.Column('at', sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_links')),
        schema=schema,
    )
    op.create_index('ix_alert_links_effect_rule', 'alert_links', ['effect_rule', 'at'],
                    unique=False, schema=schema)
    op.create_index('ix_alert_links_cause_rule', 'alert_links', ['cause_rule', 'at'],
                    unique=False, schema=schema)


def downgrade() -> None:
    schema = _schema()
    op.drop_index('ix_alert_links_cause_rule', table_name='alert_links', schema=schema)
    op.drop_index('ix_alert_links_effect_rule', table_name='alert_links', schema=schema)
    op.drop_table('alert_links', schema=schema)
