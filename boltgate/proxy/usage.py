"""Request counters of the paid proxy: counted in memory, added to the database every few seconds.

A database write per proxied request would cost more than forwarding it, so each process sums
its counts per (proxy, endpoint, UTC day) and a background task adds them to ``proxy_usage`` with
one upsert per row (``requests = requests + n``): replicas add up instead of overwriting each
other. Counts of the last seconds before a crash are lost; revenue is not counted here at all (it
is the sum of the paid challenges, which are written when paid), so money figures never drift.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import datetime

import structlog
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from boltgate.db.engine import Database
from boltgate.proxy.models import ProxyUsage

log = structlog.get_logger(__name__)
FIELDS = ("requests", "paid_requests", "challenged", "upstream_errors")
DEFAULT_KEY = "*"  # the endpoint key of requests priced by the proxy's default price


class Usage:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._counts: defaultdict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        self._lock = asyncio.Lock()

    def add(self, proxy_id: str, endpoint_key: str | None, now: datetime, field: int) -> None:
        """Count one event; ``field`` indexes :data:`FIELDS`."""
        self._counts[(proxy_id, endpoint_key or DEFAULT_KEY, now.strftime("%Y-%m-%d"))][field] += 1

    async def flush(self) -> None:
        """Write what was counted since the last flush (kept for the next one if the write fails)."""
        async with self._lock:
            counts, self._counts = self._counts, defaultdict(lambda: [0, 0, 0, 0])
            if not counts:
                return
            try:
                async with self._db.writing() as session:
                    for (proxy_id, key, day), values in sorted(counts.items()):
                        await session.execute(self._upsert(proxy_id, key, day, values))
            except Exception:
                for item, values in counts.items():
                    mine = self._counts[item]
                    for index, value in enumerate(values):
                        mine[index] += value
                raise

    def _upsert(self, proxy_id: str, key: str, day: str, values: list[int]):  # type: ignore[no-untyped-def]
        insert = sqlite_insert if self._db.dialect == "sqlite" else pg_insert
        row = dict(zip(FIELDS, values, strict=True))
        stmt = insert(ProxyUsage).values(proxy_id=proxy_id, endpoint_key=key, day=day, **row)
        table = ProxyUsage.__table__
        return stmt.on_conflict_do_update(
            index_elements=["proxy_id", "endpoint_key", "day"],
            set_={name: table.c[name] + stmt.excluded[name] for name in FIELDS},
        )

    async def run(self, interval: float) -> None:
        """Flush every ``interval`` seconds until cancelled, then once more."""
        try:
            while True:
                await asyncio.sleep(interval)
                try:
                    await self.flush()
                except Exception as exc:  # the database may be restarting: keep counting
                    log.warning("proxy_usage_flush_failed", error=type(exc).__name__)
        finally:
            try:
                await asyncio.shield(self.flush())
            except Exception as exc:
                log.warning("proxy_usage_flush_failed", error=type(exc).__name__)
