"""alerts.detail: the rules engine's resume state (phase, keep_firing_for clock, group)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 17:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a database made by create_all (adopted at 0001) may already have the column
    bind = op.get_bind()
    schema = (bind.get_execution_options().get("schema_translate_map") or {}).get(None)
    columns = {c["name"] for c in sa.inspect(bind).get_columns('alerts', schema=schema)}
    if 'detail' in columns:
        return
    # ALTER TABLE does not go through schema_translate_map: name the schema it maps to
    with op.batch_alter_table('alerts', schema=schema) as batch_op:
        batch_op.add_column(sa.Column('detail', sa.Text(), nullable=False, server_default='{}'))


def downgrade() -> None:
    bind = op.get_bind()
    schema = (bind.get_execution_options().get("schema_translate_map") or {}).get(None)
    with op.batch_alter_table('alerts', schema=schema) as batch_op:
        batch_op.drop_column('detail')
