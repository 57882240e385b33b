"""The transactional outbox: :func:`emit` writes an event and its deliveries in the caller's
transaction, so a state change and its webhooks commit (or roll back) together.

It runs on the small :class:`~boltgate.db.conn.Conn` interface, so the request path (plain driver
connections) and the settlement path (an ORM session, through ``SessionConn``) share it. On
PostgreSQL it also queues a ``NOTIFY`` (delivered at commit) that wakes every replica's live
feed and delivery worker.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import bindparam, func, insert, select

from boltgate.db.conn import Conn
from boltgate.db.raw import RawStatement
from boltgate.kit.clock import rfc3339
from boltgate.kit.ids import new_id
from boltgate.webhook import events
from boltgate.webhook.models import Delivery, Event, WebhookEndpoint

CHANNEL = "boltgate_events"
NOTIFY_MAX_BYTES = 7900  # PostgreSQL's payload limit is 8000 bytes

_endpoints = WebhookEndpoint.__table__
RAW_SUBSCRIBERS = RawStatement(
    select(_endpoints.c.id, _endpoints.c.event_types).where(_endpoints.c.merchant_id == bindparam("m"))
)
_EVENT_COLUMNS = ["id", "merchant_id", "type", "invoice_id", "body", "created_at"]
RAW_INSERT_EVENT = RawStatement(insert(Event), _EVENT_COLUMNS)
_DELIVERY_COLUMNS = [
    "id",
    "merchant_id",
    "endpoint_id",
    "event_id",
    "status",
    "attempts",
    "next_attempt_at",
    "created_at",
]
RAW_INSERT_DELIVERY = RawStatement(insert(Delivery), _DELIVERY_COLUMNS)
RAW_NOTIFY = RawStatement(select(func.pg_notify(CHANNEL, bindparam("payload"))))


def subscribed(event_types: list[str] | None, event: str) -> bool:
    return not event_types or event in event_types


async def emit(
    conn: Conn,
    *,
    merchant_id: str,
    event: str,
    data: dict[str, Any],
    now: datetime,
    invoice_id: str | None = None,
    postgresql: bool,
) -> str:
    """Write ``event`` and one pending delivery per subscribed endpoint; returns the event's id.

    A disabled endpoint gets its deliveries too; they are held (never sent) until it is enabled
    again, then go out in order: disabling, by hand or after failures, never loses an event.
    """
    assert event in events.EVENT_TYPES, event
    event_id = new_id("evt")
    body = events.body(event_id, event, rfc3339(now) or "", data)
    await conn.run(
        RAW_INSERT_EVENT,
        {
            "id": event_id,
            "merchant_id": merchant_id,
            "type": event,
            "invoice_id": invoice_id,
            "body": body,
            "created_at": now,
        },
    )
    for endpoint in await conn.all(RAW_SUBSCRIBERS, {"m": merchant_id}):
        if subscribed(endpoint.event_types, event):
            await conn.run(
                RAW_INSERT_DELIVERY,
                {
                    "id": new_id("dlv"),
                    "merchant_id": merchant_id,
                    "endpoint_id": endpoint.id,
                    "event_id": event_id,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                },
            )
    if postgresql:
        payload = notify_payload(event_id, event, invoice_id, body)
        await conn.run(RAW_NOTIFY, {"payload": payload})
    return event_id


def notify_payload(event_id: str, event: str, invoice_id: str | None, body: str) -> str:
    """The NOTIFY payload: the whole body when it fits, else only what locates the event."""
    head = {"id": event_id, "event": event, "invoiceId": invoice_id}
    if len(body) + 200 <= NOTIFY_MAX_BYTES:
        return orjson.dumps({**head, "body": body}).decode()
    return orjson.dumps(head).decode()
