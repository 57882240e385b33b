"""The live event feed of one process: SSE streams subscribe to an invoice's events here.

- **PostgreSQL**: a dedicated connection ``LISTEN``s on the outbox channel; every replica hears
  every committed event (``NOTIFY`` is sent at commit, never for a rolled-back change).
- **SQLite**: writes are serialised, so the events table's ``seq`` grows in commit order; the feed
  reads new rows as soon as a write of this process commits, and every
  ``BOLTGATE_EVENT_POLL_INTERVAL_SECONDS`` (50 ms by default) for the writes of other processes
  (``--workers``, ``boltgate worker``) on the same file.

Either way a new event also wakes this process's webhook worker. Live events are a convenience:
a stream starts with the payment's current state, and a client that reconnects asks again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson
import structlog
from sqlalchemy import bindparam, func, select

from boltgate.db.conn import asyncpg_dsn
from boltgate.db.engine import Database
from boltgate.db.errors import log_failure
from boltgate.db.raw import RawStatement
from boltgate.webhook.models import Event
from boltgate.webhook.outbox import CHANNEL

log = structlog.get_logger(__name__)
QUEUE_SIZE = 64

_events = Event.__table__
RAW_NEW_EVENTS = RawStatement(
    select(_events.c.seq, _events.c.id, _events.c.type, _events.c.invoice_id, _events.c.body)
    .where(_events.c.seq > bindparam("after"))
    .order_by(_events.c.seq)
    .limit(500)
)
RAW_LAST_SEQ = RawStatement(select(func.coalesce(func.max(_events.c.seq), 0).label("seq")))
RAW_EVENT_BODY = RawStatement(select(_events.c.body).where(_events.c.id == bindparam("id")))


class ListenLost(ConnectionError):
    """PostgreSQL closed the LISTEN connection (a restart): the feed connects again."""


class EventFeed:
    def __init__(self, db: Database, *, poll_interval: float, wake: asyncio.Event) -> None:
        self.db = db
        self.poll_interval = poll_interval
        self.wake = wake
        self._subscribers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}
        self.ready = asyncio.Event()
        self._kick = asyncio.Event()
        if db.is_sqlite:
            db.on_commit(self._kick.set)  # this process's writes: look now, not at the next poll

    @contextlib.contextmanager
    def subscribe(self, invoice_id: str) -> Iterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers.setdefault(invoice_id, set()).add(queue)
        try:
            yield queue
        finally:
            queues = self._subscribers.get(invoice_id)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self._subscribers[invoice_id]

    def publish(self, invoice_id: str | None, body: dict[str, Any]) -> None:
        if invoice_id is None:
            return
        for queue in self._subscribers.get(invoice_id, ()):
            if queue.full():  # a stalled client loses its oldest event, not the feed
                queue.get_nowait()
            queue.put_nowait(body)

    async def run(self) -> None:
        while True:
            try:
                if self.db.is_sqlite:
                    await self._poll()
                else:
                    await self._listen()
            except asyncio.CancelledError:
                raise
            except ListenLost:
                log.warning("event_feed_reconnecting", reason="the LISTEN connection was lost")
                await asyncio.sleep(1.0)
            except Exception as exc:
                log_failure(log, "event_feed_failed", exc)
                await asyncio.sleep(1.0)

    async def _poll(self) -> None:
        async with self.db.read_connection() as conn:
            row = await conn.first(RAW_LAST_SEQ, {})
        after = int(row.seq) if row is not None else 0
        self.ready.set()
        while True:
            self._kick.clear()
            async with self.db.read_connection() as conn:
                rows = await conn.all(RAW_NEW_EVENTS, {"after": after})
            if rows:
                after = int(rows[-1].seq)
                self.wake.set()
                if self._subscribers:
                    for row in rows:
                        if row.invoice_id in self._subscribers:
                            self.publish(row.invoice_id, orjson.loads(row.body))
            if len(rows) < 500:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_interval):
                        await self._kick.wait()

    async def _listen(self) -> None:
        connection = await asyncpg.connect(asyncpg_dsn(self.db.url))
        try:
            notes: asyncio.Queue[str] = asyncio.Queue()
            await connection.add_listener(CHANNEL, lambda *args: notes.put_nowait(args[3]))
            connection.add_termination_listener(lambda _c: notes.put_nowait(""))
            self.ready.set()
            while True:
                note = await notes.get()
                if not note:
                    raise ListenLost("the LISTEN connection was lost")
                payload = orjson.loads(note)
                self.wake.set()
                invoice_id = payload.get("invoiceId")
                if invoice_id not in self._subscribers:
                    continue
                body = payload.get("body")
                if body is None:  # too large for a NOTIFY: read it
                    async with self.db.read_connection() as conn:
                        row = await conn.first(RAW_EVENT_BODY, {"id": payload["id"]})
                    body = row.body if row is not None else None
                if body is not None:
                    self.publish(invoice_id, orjson.loads(body))
        finally:
            self.ready.clear()
            await connection.close()
