"""Alembic environment: runs on the connection handed over by :mod:`boltgate.db.migrate`."""

from __future__ import annotations

from alembic import context

from boltgate.db.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - only via boltgate.db.migrate
    raise RuntimeError("run migrations with `boltgate migrate`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
