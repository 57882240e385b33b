"""The rules of the webhooks API: endpoints, secrets and rotation, the delivery log, redelivery."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from boltgate.config import Settings
from boltgate.db.owned import owned
from boltgate.errors import Conflict, NotFound, ValidationFailed
from boltgate.kit.clock import rfc3339
from boltgate.kit.crypto import SecretBox
from boltgate.kit.ids import new_id
from boltgate.kit.netguard import is_public
from boltgate.webhook import delivery as sender
from boltgate.webhook import events, schemas
from boltgate.webhook.models import Delivery, DeliveryAttempt, Event, WebhookEndpoint
from boltgate.webhook.signing import new_secret

MAX_ENDPOINTS = 20


def check_policy(url: str, settings: Settings) -> None:
    """https outside dev; a literal private address is refused at once (names at connect time)."""
    if not settings.is_dev and urlsplit(url).scheme != "https":
        raise ValidationFailed("url: must be https", errors={"url": ["must be https outside dev mode"]})
    address = schemas.literal_address(url)
    if address is not None and not settings.webhooks_may_reach_private and not is_public(str(address)):
        message = "is a private, loopback, link-local or metadata address (BOLTGATE_WEBHOOK_ALLOW_PRIVATE)"
        raise ValidationFailed(f"url: {message}", errors={"url": [message]}, code="webhook_url_not_allowed")


async def create(
    session: AsyncSession,
    box: SecretBox,
    settings: Settings,
    merchant_id: str,
    body: schemas.EndpointCreate,
    now: datetime,
) -> tuple[WebhookEndpoint, str]:
    check_policy(body.url, settings)
    count = await session.scalar(
        select(func.count()).select_from(WebhookEndpoint).where(WebhookEndpoint.merchant_id == merchant_id)
    )
    if (count or 0) >= MAX_ENDPOINTS:
        raise Conflict(f"at most {MAX_ENDPOINTS} webhook endpoints per merchant", code="too_many_endpoints")
    secret = new_secret()
    endpoint = WebhookEndpoint(
        id=new_id("whe"),
        merchant_id=merchant_id,
        url=body.url,
        description=body.description,
        event_types=body.events or [],
        enabled=body.enabled,
        secret=box.seal(secret),
        consecutive_failures=0,
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    await session.flush()
    return endpoint, secret


async def get(session: AsyncSession, merchant_id: str, endpoint_id: str) -> WebhookEndpoint:
    return await owned(
        session, WebhookEndpoint, merchant_id, endpoint_id, what="webhook endpoint", code="webhook_not_found"
    )


async def list_endpoints(session: AsyncSession, merchant_id: str) -> list[WebhookEndpoint]:
    stmt = (
        select(WebhookEndpoint)
        .where(WebhookEndpoint.merchant_id == merchant_id)
        .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    )
    return list((await session.scalars(stmt)).all())


async def update(
    session: AsyncSession,
    settings: Settings,
    merchant_id: str,
    endpoint_id: str,
    body: schemas.EndpointUpdate,
    now: datetime,
) -> WebhookEndpoint:
    endpoint = await get(session, merchant_id, endpoint_id)
    given = body.model_fields_set
    if "url" in given and body.url is not None:
        check_policy(body.url, settings)
        endpoint.url = body.url
    if "description" in given:
        endpoint.description = body.description
    if "events" in given:
        endpoint.event_types = body.events or []
    if "enabled" in given and body.enabled is not None:
        if body.enabled and not endpoint.enabled:  # re-enabled: a fresh start; held deliveries flow
            endpoint.consecutive_failures, endpoint.failing_since = 0, None
            endpoint.disabled_reason, endpoint.disabled_at = None, None
        endpoint.enabled = body.enabled
    endpoint.updated_at = now
    await session.flush()
    return endpoint


async def remove(session: AsyncSession, merchant_id: str, endpoint_id: str) -> None:
    endpoint = await get(session, merchant_id, endpoint_id)
    await session.execute(delete(Delivery).where(Delivery.endpoint_id == endpoint.id))
    await session.delete(endpoint)


async def rotate(
    session: AsyncSession,
    box: SecretBox,
    merchant_id: str,
    endpoint_id: str,
    overlap_seconds: int,
    now: datetime,
) -> tuple[WebhookEndpoint, str]:
    endpoint = await get(session, merchant_id, endpoint_id)
    secret = new_secret()
    if overlap_seconds > 0:
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = now + timedelta(seconds=overlap_seconds)
    else:
        endpoint.previous_secret, endpoint.previous_secret_expires_at = None, None
    endpoint.secret = box.seal(secret)
    endpoint.updated_at = now
    await session.flush()
    return endpoint, secret


async def deliveries(
    session: AsyncSession, merchant_id: str, endpoint_id: str, status: str | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    await get(session, merchant_id, endpoint_id)
    where = [Delivery.endpoint_id == endpoint_id]
    if status is not None:
        where.append(Delivery.status == status)
    total = await session.scalar(select(func.count()).select_from(Delivery).where(*where)) or 0
    rows = (
        await session.execute(
            select(Delivery, Event.type)
            .join(Event, Event.id == Delivery.event_id)
            .where(*where)
            .order_by(Delivery.seq.desc())
            .limit(limit)
            .offset(offset)
        )
    ).all()
    ids = [row[0].id for row in rows]
    attempts: dict[str, list[DeliveryAttempt]] = {i: [] for i in ids}
    if ids:
        for attempt in (
            await session.scalars(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.delivery_id.in_(ids))
                .order_by(DeliveryAttempt.seq)
            )
        ).all():
            attempts[attempt.delivery_id].append(attempt)
    return [schemas.delivery_out(d, event_type, attempts[d.id]) for d, event_type in rows], int(total)


async def redeliver(
    session: AsyncSession, merchant_id: str, delivery_id: str, now: datetime
) -> dict[str, Any]:
    """A new delivery of the same event (same id and body) to the same endpoint, due now."""
    original = await session.scalar(select(Delivery).where(Delivery.id == delivery_id))
    if original is None or original.merchant_id != merchant_id:
        raise NotFound(f"delivery {delivery_id} not found", code="delivery_not_found")
    copy = Delivery(
        id=new_id("dlv"),
        merchant_id=merchant_id,
        endpoint_id=original.endpoint_id,
        event_id=original.event_id,
        status="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(copy)
    await session.flush()
    event_type = await session.scalar(select(Event.type).where(Event.id == original.event_id))
    return schemas.delivery_out(copy, event_type or "", [])


async def ping(
    endpoint: WebhookEndpoint, box: SecretBox, client: httpx.AsyncClient, now: datetime
) -> dict[str, Any]:
    """Send a signed ``webhook.test`` event now, outside the queue, and report what happened."""
    event_id = new_id("evt")
    body = events.body(event_id, "webhook.test", rfc3339(now) or "", {"endpointId": endpoint.id}).encode()
    outcome = await sender.send(
        client, endpoint.url, event_id, body, sender.active_secrets(endpoint, box, now), lambda: now
    )
    return {
        "success": outcome.ok,
        "statusCode": outcome.status_code,
        "latencyMs": outcome.latency_ms,
        "error": outcome.error,
        "responseBody": outcome.response,
    }
