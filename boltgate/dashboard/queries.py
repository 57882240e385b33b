"""All SQL of the dashboard's pages, every statement scoped to the signed-in merchant."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import String, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from boltgate.kit.money import BTC
from boltgate.payment.models import Payment
from boltgate.webhook.models import Delivery, DeliveryAttempt, Event, WebhookEndpoint

PAGE_SIZE = 25
PAID = ("paid", "refunded")


@dataclass(frozen=True, slots=True)
class PaymentFilter:
    status: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    query: str | None = None
    page: int = 1


async def search_payments(
    session: AsyncSession, merchant_id: str, filters: PaymentFilter
) -> tuple[list[Payment], int]:
    where: list[Any] = [Payment.merchant_id == merchant_id]
    if filters.status:
        where.append(Payment.status == filters.status)
    if filters.since:
        where.append(Payment.created_at >= filters.since)
    if filters.until:
        where.append(Payment.created_at < filters.until)
    if filters.query:
        text = filters.query.lower()
        where.append(
            or_(
                Payment.id == filters.query,
                func.lower(Payment.order_id).contains(text, autoescape=True),
                func.lower(Payment.description).contains(text, autoescape=True),
                func.lower(Payment.customer_email).contains(text, autoescape=True),
            )
        )
    total = await session.scalar(select(func.count()).select_from(Payment).where(*where)) or 0
    rows = await session.scalars(
        select(Payment)
        .where(*where)
        .order_by(Payment.created_at.desc(), Payment.id.desc())
        .limit(PAGE_SIZE)
        .offset((filters.page - 1) * PAGE_SIZE)
    )
    return list(rows), int(total)


async def get_payment(session: AsyncSession, merchant_id: str, payment_id: str) -> Payment | None:
    return await session.scalar(
        select(Payment).where(Payment.id == payment_id, Payment.merchant_id == merchant_id)
    )


@dataclass(frozen=True, slots=True)
class TimelineDelivery:
    delivery: Delivery
    endpoint_url: str
    attempts: list[DeliveryAttempt]


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    event: Event
    deliveries: list[TimelineDelivery]


async def timeline(session: AsyncSession, merchant_id: str, payment_id: str) -> list[TimelineEvent]:
    """The payment's events, oldest first, each with its deliveries and their attempts."""
    events = list(
        await session.scalars(
            select(Event)
            .where(Event.merchant_id == merchant_id, Event.invoice_id == payment_id)
            .order_by(Event.seq)
            .limit(200)
        )
    )
    if not events:
        return []
    rows = (
        await session.execute(
            select(Delivery, WebhookEndpoint.url)
            .join(WebhookEndpoint, WebhookEndpoint.id == Delivery.endpoint_id)
            .where(Delivery.merchant_id == merchant_id, Delivery.event_id.in_([e.id for e in events]))
            .order_by(Delivery.seq)
        )
    ).all()
    attempts: defaultdict[str, list[DeliveryAttempt]] = defaultdict(list)
    if rows:
        for attempt in await session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id.in_([d.id for d, _ in rows]))
            .order_by(DeliveryAttempt.seq)
        ):
            attempts[attempt.delivery_id].append(attempt)
    per_event: defaultdict[str, list[TimelineDelivery]] = defaultdict(list)
    for delivery, url in rows:
        per_event[delivery.event_id].append(TimelineDelivery(delivery, url, attempts[delivery.id]))
    return [TimelineEvent(event, per_event[event.id]) for event in events]


def _day(column: Any) -> Any:
    # both engines render a stored time as "YYYY-MM-DD HH:MM:SS…" text (as proxy/stats.py does)
    return func.substr(cast(column, String), 1, 10)


@dataclass(frozen=True, slots=True)
class Revenue:
    days: list[str]  # YYYY-MM-DD, oldest first
    sats: dict[str, int]  # per day
    fiat: dict[str, dict[str, Decimal]]  # currency -> day -> amount


def window(now: datetime, days: int) -> tuple[list[str], datetime]:
    start = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return [(start + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(days)], start


async def revenue(session: AsyncSession, merchant_id: str, now: datetime, days: int = 30) -> Revenue:
    """Paid (and later refunded) payments per UTC day of payment: sats, and fiat per currency."""
    labels, start = window(now, days)
    where = (Payment.merchant_id == merchant_id, Payment.status.in_(PAID), Payment.paid_at >= start)
    sats: dict[str, int] = dict.fromkeys(labels, 0)
    day = _day(Payment.paid_at)
    for on, total in await session.execute(
        select(day, func.sum(Payment.amount_sats)).where(*where).group_by(day)
    ):
        if str(on) in sats:
            sats[str(on)] += int(total or 0)
    fiat: defaultdict[str, dict[str, Decimal]] = defaultdict(lambda: dict.fromkeys(labels, Decimal(0)))
    for on, currency, amount in await session.execute(
        select(day, Payment.currency, Payment.amount).where(*where, Payment.currency != BTC)
    ):
        if str(on) in sats:
            fiat[currency][str(on)] += Decimal(amount)
    return Revenue(labels, sats, dict(sorted(fiat.items())))


async def event_of_delivery(session: AsyncSession, merchant_id: str, delivery_id: str) -> str | None:
    return await session.scalar(
        select(Delivery.event_id).where(Delivery.id == delivery_id, Delivery.merchant_id == merchant_id)
    )


async def invoice_of_event(session: AsyncSession, merchant_id: str, event_id: str | None) -> str | None:
    if event_id is None:
        return None
    return await session.scalar(
        select(Event.invoice_id).where(Event.id == event_id, Event.merchant_id == merchant_id)
    )
