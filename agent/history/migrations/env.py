"""Alembic environment: runs on the engine the store hands over (never reads alembic.ini)."""

from __future__ import annotations

from alembic import context

from agent.history.tables import metadata

config = context.config
engine = config.attributes.get("engine")
if engine is None:  # `alembic -x url=...` from a shell
    from agent.history.db import make_engine

    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("give the database as: alembic -x url=sqlite:///mlwarden.db upgrade head")
    engine = make_engine(url)

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # ALTER TABLE by copy on SQLite
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
