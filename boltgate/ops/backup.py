"""``boltgate backup PATH``: a consistent copy of the database, taken while the gateway runs.

SQLite: the database is in WAL mode, so committed transactions may still be in ``boltgate.db-wal``
and copying ``boltgate.db`` alone can lose them or give a torn file. SQLite's online backup API
copies every page of one snapshot (a read transaction: writers go on meanwhile) into a new file,
which is then made self-contained (rollback journal, no ``-wal``), checked and renamed into
place, so PATH is either a whole backup or absent.

PostgreSQL: ``pg_dump --format=custom`` (restored with ``pg_restore``), one transaction's snapshot.
The connection comes from the URL through ``PG*`` variables: the password never appears on a
command line.

Neither holds the server key (``BOLTGATE_SECRET_KEY``) that seals stored credentials (webhook
secrets, merchants' wallet connections, L402 root keys): back it up apart from the database.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from boltgate.db.engine import is_sqlite

_SSL_MODES = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}


class BackupError(Exception):
    """The backup was not made; nothing was left at the destination."""


@dataclass(frozen=True)
class Backup:
    path: Path
    kind: str  # sqlite | postgresql
    size: int


def backup(url: str, destination: Path) -> Backup:
    """Write a consistent backup of the database at ``url`` to ``destination`` (which must not exist)."""
    destination = destination.expanduser().absolute()
    if destination.exists():
        raise BackupError(f"{destination} exists; name a new file")
    if not destination.parent.is_dir():
        raise BackupError(f"{destination.parent} is not a directory")
    partial = destination.with_name(f".{destination.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        if is_sqlite(url):
            kind = "sqlite"
            _sqlite(url, partial)
        else:
            kind = "postgresql"
            _pg_dump(url, partial)
        _fsync(partial)
        os.replace(partial, destination)
        _fsync(destination.parent)
    finally:
        partial.unlink(missing_ok=True)
    return Backup(destination, kind, destination.stat().st_size)


def _sqlite(url: str, partial: Path) -> None:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory database cannot be backed up")
    source_path = Path(database).absolute()
    if not source_path.is_file():
        raise BackupError(f"no database at {source_path}")
    owner = source_path.stat().st_uid
    if owner != os.geteuid():
        # SQLite creates the -wal and -shm files beside the database when none are there: owned by
        # another user (root), they would keep the gateway from opening its database.
        raise BackupError(f"run this as the user the database belongs to (uid {owner})")
    partial.touch(mode=0o600)  # API keys are hashed and secrets sealed, but the rest is personal data
    source = sqlite3.connect(f"{source_path.as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        target = sqlite3.connect(partial)
        try:
            source.backup(target)  # all pages at once: one snapshot, writers are not blocked (WAL)
            target.execute("PRAGMA journal_mode=DELETE")  # one file; the gateway turns WAL on again
            check = target.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise BackupError(f"the copy fails SQLite's check: {check}")
        finally:
            target.close()
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite: {exc}") from exc
    finally:
        source.close()


def pg_environment(url: str) -> dict[str, str]:
    """The libpq variables (``PGHOST``…) that connect ``pg_dump`` or ``pg_restore`` to ``url``."""
    parsed = make_url(url)
    env = {
        "PGHOST": parsed.host,
        "PGPORT": str(parsed.port) if parsed.port else None,
        "PGUSER": parsed.username,
        "PGPASSWORD": parsed.password if isinstance(parsed.password, str) else None,
        "PGDATABASE": parsed.database,
    }
    ssl = parsed.query.get("sslmode") or parsed.query.get("ssl")
    if isinstance(ssl, str) and ssl in _SSL_MODES:
        env["PGSSLMODE"] = ssl
    return {name: value for name, value in env.items() if value}


def _pg_dump(url: str, partial: Path) -> None:
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise BackupError("pg_dump is not installed (Debian: postgresql-client-<the server's major version>)")
    env = {**os.environ, **pg_environment(url)}
    partial.touch(mode=0o600)  # pg_dump keeps the mode of the file it overwrites
    command = [pg_dump, "--format=custom", "--no-password", f"--file={partial}"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BackupError(f"pg_dump failed: {result.stderr.strip()}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
