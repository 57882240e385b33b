"""The settlement path against the real dev node and database: watcher, sweeper, reconciler."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest

from boltgate.db.engine import Database
from boltgate.kit.clock import utcnow
from boltgate.lightning.devnode import DevNode
from boltgate.payment import repository, tasks
from boltgate.payment.schemas import PaymentCreate
from boltgate.payment.service import create_payment
from boltgate.rates import FixedRateProvider, RateService


@pytest.fixture
def node(tmp_path):
    return DevNode(tmp_path / "node", poll_interval=0.02)


@pytest.fixture
def rates():
    return RateService([FixedRateProvider({"USD": Decimal("100000")})], ttl_seconds=60, stale_max_seconds=60)


async def new_payment(db, node, rates, merchant_id, order_id, settings_factory):
    body = PaymentCreate(orderId=order_id, amount=Decimal("1.00"), currency="USD")
    payment, _ = await create_payment(
        db, node, rates, settings_factory(), merchant_id, body, idempotency_key=None, clock=utcnow
    )
    return payment


@pytest.fixture
def settings_factory(data_root, database_url):
    from tests.conftest import make_settings

    return lambda **kw: make_settings(data_root, database_url, **kw)


async def status_of(db: Database, merchant_id: str, payment_id: str) -> str:
    async with db.reading() as session:
        payment = await repository.get(session, merchant_id, payment_id)
    assert payment is not None
    return payment.status


async def test_reconciler_finds_a_settlement_the_stream_missed(db, node, rates, merchant, settings_factory):
    merchant_id, _ = merchant
    payment = await new_payment(db, node, rates, merchant_id, "rec-1", settings_factory)
    other = await new_payment(db, node, rates, merchant_id, "rec-2", settings_factory)
    assert (await node.pay_payment_hash(payment.payment_hash)).preimage
    repaired = await tasks.reconcile_once(db, node, utcnow)
    assert repaired >= 1
    assert await status_of(db, merchant_id, payment.id) == "paid"
    assert await status_of(db, merchant_id, other.id) == "unpaid"
    # running it again changes nothing (idempotent)
    await tasks.reconcile_once(db, node, utcnow)
    assert await status_of(db, merchant_id, payment.id) == "paid"


async def test_watcher_marks_paid_exactly_once_and_resumes_from_its_cursor(
    db, node, rates, merchant, settings_factory
):
    merchant_id, _ = merchant
    payments = [await new_payment(db, node, rates, merchant_id, f"w-{i}", settings_factory) for i in range(3)]
    watchers = [asyncio.create_task(tasks.watch_settlements(db, node, utcnow)) for _ in range(2)]
    try:
        for payment in payments:
            await node.pay_payment_hash(payment.payment_hash)
        for _ in range(200):
            statuses = [await status_of(db, merchant_id, p.id) for p in payments]
            if statuses == ["paid"] * 3:
                break
            await asyncio.sleep(0.02)
        assert statuses == ["paid"] * 3
    finally:
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
    from boltgate.worker import cursors

    async with db.reading() as session:
        stored = await cursors.get(session, tasks.cursor_name("dev", node.pubkey.hex()))
    assert stored == node.settle_index() == 3


async def test_sweeper_expires_only_past_due_and_prefers_a_last_second_payment(
    db, node, rates, merchant, settings_factory
):
    merchant_id, _ = merchant
    stale = await new_payment(db, node, rates, merchant_id, "exp-1", settings_factory)
    paid_late = await new_payment(db, node, rates, merchant_id, "exp-2", settings_factory)
    fresh = await new_payment(db, node, rates, merchant_id, "exp-3", settings_factory)
    await node.pay_payment_hash(paid_late.payment_hash)  # settled, but nobody told the gateway yet
    later = stale.expires_at + timedelta(seconds=1)
    async with db.writing() as session:  # move "fresh" into the future so it is not due
        from sqlalchemy import update

        from boltgate.payment.models import Payment

        await session.execute(
            update(Payment).where(Payment.id == fresh.id).values(expires_at=later + timedelta(hours=1))
        )
    expired = await tasks.expire_due(db, node, lambda: later)
    assert expired >= 1
    assert await status_of(db, merchant_id, stale.id) == "expired"
    assert await status_of(db, merchant_id, paid_late.id) == "paid"
    assert await status_of(db, merchant_id, fresh.id) == "unpaid"


async def test_late_settlement_after_expiry_is_repaired_by_the_reconciler(
    db, node, rates, merchant, settings_factory
):
    merchant_id, _ = merchant
    payment = await new_payment(db, node, rates, merchant_id, "late-1", settings_factory)
    later = payment.expires_at + timedelta(seconds=1)
    await tasks.expire_due(db, node, lambda: later)
    assert await status_of(db, merchant_id, payment.id) == "expired"
    # the node had accepted the payment before its expiry; the gateway only learns now
    node._db.execute(
        "UPDATE invoices SET state='settled', settled_at=created_at + 1, amount_received_msat=amount_msat,"
        " settle_index=(SELECT COALESCE(MAX(settle_index),0)+1 FROM invoices) WHERE payment_hash=?",
        (payment.payment_hash,),
    )
    await tasks.reconcile_once(db, node, lambda: later + timedelta(minutes=5))
    assert await status_of(db, merchant_id, payment.id) == "paid"
