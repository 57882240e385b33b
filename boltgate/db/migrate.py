"""Schema migrations (Alembic), run by ``boltgate migrate`` and at start-up of ``boltgate serve``.

On PostgreSQL an advisory lock makes replicas that start together migrate one after another.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from boltgate.db.engine import is_sqlite

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_LOCK_KEY = 0x626F6C74  # "bolt"


def alembic_config(connection: Any | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Any, revision: str) -> None:
    command.upgrade(alembic_config(connection), revision)


async def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision``."""
    if is_sqlite(url):
        from boltgate.db.engine import _sqlite_engine

        engine = _sqlite_engine(url, writer=False)
    else:
        engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            if not is_sqlite(url):
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
            await conn.run_sync(_upgrade, revision)
    finally:
        await engine.dispose()
