"""outbox claims: claimed_by and claim_expires, for agents sharing one store

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 17:10:00

Agents sharing PostgreSQL claim an outbox row (pending -> sending) by compare-and-set
before sending it; the claimer and the claim's expiry let another agent take over the
row of an agent that died mid-send.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def _schema() -> str | None:
    # a connection with a schema_translate_map (one schema per test, per tenant) names the
    # schema; Alembic's ALTER TABLE and the inspector do not apply the map themselves
    return (op.get_bind().get_execution_options().get("schema_translate_map") or {}).get(None)


def upgrade() -> None:
    schema = _schema()
    # a database made by ``metadata.create_all`` and adopted at 0001 may have them already
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns('outbox', schema=schema)}
    with op.batch_alter_table('outbox', schema=schema) as batch_op:
        if 'claimed_by' not in present:
            batch_op.add_column(sa.Column('claimed_by', sa.String(length=200), nullable=True))
        if 'claim_expires' not in present:
            batch_op.add_column(sa.Column('claim_expires', sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=_schema()) as batch_op:
        batch_op.drop_column('claim_expires')
        batch_op.drop_column('claimed_by')
