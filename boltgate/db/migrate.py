"""Schema migrations (Alembic), run by ``boltgate migrate`` and at start-up of ``boltgate serve``.

On PostgreSQL an advisory lock makes replicas that start together migrate one after another.
On SQLite the migrations run with foreign keys off: SQLite changes a table's columns by copying
it and dropping the old one, and with foreign keys on, that DROP would cascade to every row that
refers to it (dropping ``merchants`` would delete every API key and payment). The references are
checked once the migration is done (``PRAGMA foreign_key_check``); a broken one stops it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
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


def _downgrade(connection: Any, revision: str) -> None:
    command.downgrade(alembic_config(connection), revision)


def _foreign_keys_off(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=OFF")  # after boltgate's pragmas, which turn them on
    cursor.close()


async def _migrate(url: str, step: Any, revision: str) -> None:
    if is_sqlite(url):
        from boltgate.db.engine import _sqlite_engine

        engine = _sqlite_engine(url, writer=False)
        event.listen(engine.sync_engine, "connect", _foreign_keys_off)
    else:
        engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            if not is_sqlite(url):
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
            await conn.run_sync(step, revision)
            if is_sqlite(url):
                broken = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all()
                if broken:
                    raise RuntimeError(f"the migration left {len(broken)} broken references: {broken[:5]}")
    finally:
        await engine.dispose()


async def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision``."""
    await _migrate(url, _upgrade, revision)


async def downgrade(url: str, revision: str) -> None:
    """Take the database at ``url`` back to ``revision`` (for tests of upgrades; operators restore
    a backup instead)."""
    await _migrate(url, _downgrade, revision)
