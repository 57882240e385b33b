"""All SQL of the dashboard's pages, every statement scoped to the signed-in merchant."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Generic, TypeVar

from sqlalchemy import String, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from boltgate.kit.money import BTC
from boltgate.l402.models import Challenge
from boltgate.payment.models import Payment
from boltgate.proxy.models import Proxy
from boltgate.refund.models import Refund
from boltgate.webhook.models import Delivery, DeliveryAttempt, Event, WebhookEndpoint

PAGE_SIZE = 25
PAID = ("paid", "refunded")  # received: a refunded payment was paid first
REFUND_COMPLETED = "completed"


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


N = TypeVar("N", int, Decimal)


@dataclass(frozen=True, slots=True)
class Flow(Generic[N]):
    """One unit's money per UTC day (YYYY-MM-DD): what was received and what was refunded."""

    received: dict[str, N]
    refunded: dict[str, N]


@dataclass(frozen=True, slots=True)
class Revenue:
    days: list[str]  # YYYY-MM-DD, oldest first
    sats: Flow[int]
    fiat: dict[str, Flow[Decimal]]  # per fiat currency, by code


def window(now: datetime, days: int) -> tuple[list[str], datetime]:
    start = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return [(start + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(days)], start


def _add(per_day: dict[str, N], day: Any, value: N) -> None:
    if str(day) in per_day:  # a time after ``now`` (a clock set back) is outside the window
        per_day[str(day)] += value


async def revenue(session: AsyncSession, merchant_id: str, now: datetime, days: int = 30) -> Revenue:
    """Received: payments paid (those refunded since too) on the UTC day they were paid. Refunded:
    completed refunds on the UTC day they completed. In sats, and per fiat currency exactly."""
    labels, start = window(now, days)
    sats: Flow[int] = Flow(dict.fromkeys(labels, 0), dict.fromkeys(labels, 0))
    fiat: dict[str, Flow[Decimal]] = {}

    def of(currency: str) -> Flow[Decimal]:
        zero = Decimal(0)
        return fiat.setdefault(currency, Flow(dict.fromkeys(labels, zero), dict.fromkeys(labels, zero)))

    paid_on = _day(Payment.paid_at)
    paid = (Payment.merchant_id == merchant_id, Payment.status.in_(PAID), Payment.paid_at >= start)
    for on, total in await session.execute(
        select(paid_on, func.sum(Payment.amount_sats)).where(*paid).group_by(paid_on)
    ):
        _add(sats.received, on, int(total or 0))
    for on, currency, amount in await session.execute(
        select(paid_on, Payment.currency, Payment.amount).where(*paid, Payment.currency != BTC)
    ):
        _add(of(currency).received, on, Decimal(amount))
    done_on = _day(Refund.completed_at)
    done = (
        Refund.merchant_id == merchant_id,
        Refund.status == REFUND_COMPLETED,
        Refund.completed_at >= start,
    )
    for on, total in await session.execute(
        select(done_on, func.sum(Refund.amount_sats)).where(*done).group_by(done_on)
    ):
        _add(sats.refunded, on, int(total or 0))
    for on, currency, amount in await session.execute(
        select(done_on, Refund.currency, Refund.amount).where(*done, Refund.currency != BTC)
    ):
        _add(of(currency).refunded, on, Decimal(amount))
    return Revenue(labels, sats, dict(sorted(fiat.items())))


@dataclass(frozen=True, slots=True)
class ProxyRevenue:
    proxy_id: str
    name: str
    retired: bool
    sats: dict[str, int]  # per UTC day
    payments: int  # paid L402 challenges in the window

    @property
    def total(self) -> int:
        return sum(self.sats.values())


async def l402_revenue(
    session: AsyncSession, merchant_id: str, now: datetime, days: int = 30
) -> list[ProxyRevenue]:
    """Each proxy that earned in the window or is not retired, with its revenue per UTC day: the
    paid challenges of its routes (``proxy:<id>:<endpoint>``), each on the day it was first used,
    as ``proxy/stats.py`` counts them. Largest revenue first."""
    labels, start = window(now, days)
    names = {
        proxy_id: (name, retired is not None)
        for proxy_id, name, retired in await session.execute(
            select(Proxy.id, Proxy.name, Proxy.retired_at).where(Proxy.merchant_id == merchant_id)
        )
    }
    per_day: defaultdict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(labels, 0))
    payments: defaultdict[str, int] = defaultdict(int)
    paid_on = _day(Challenge.paid_at)
    for resource, on, total, count in await session.execute(
        select(Challenge.resource, paid_on, func.sum(Challenge.amount_sats), func.count())
        .where(
            Challenge.merchant_id == merchant_id,
            Challenge.paid_at >= start,
            Challenge.resource.startswith("proxy:", autoescape=True),
        )
        .group_by(Challenge.resource, paid_on)
    ):
        proxy_id = resource.split(":")[1]
        _add(per_day[proxy_id], on, int(total or 0))
        payments[proxy_id] += int(count)
    rows = []
    for proxy_id in {*per_day, *(p for p, (_, retired) in names.items() if not retired)}:
        name, retired = names.get(proxy_id, (proxy_id, True))  # a proxy deleted since: its id
        rows.append(ProxyRevenue(proxy_id, name, retired, per_day[proxy_id], payments[proxy_id]))
    return sorted(rows, key=lambda row: (-row.total, row.name.lower(), row.proxy_id))


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
