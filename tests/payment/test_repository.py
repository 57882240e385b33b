"""The hot-path statements: rows written by them read back identically through the ORM and back,
and a duplicate raises SQLAlchemy's IntegrityError on either database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from boltgate.kit.ids import new_id
from boltgate.payment import repository
from boltgate.payment.models import Payment


def make_payment(merchant_id: str, order_id: str, **extra: object) -> Payment:
    now = datetime(2026, 11, 23, 12, 0, 0, 123456, tzinfo=UTC)
    values: dict[str, object] = {
        "id": new_id("inv"),
        "merchant_id": merchant_id,
        "order_id": order_id,
        "status": "unpaid",
        "amount": "25.00",
        "currency": "USD",
        "amount_sats": 25_000,
        "amount_msat": 25_000_000,
        "rate": "100000",
        "rate_source": "fixed",
        "payment_hash": new_id("h", 40),
        "payment_request": "lnbcrt1example",
        "backend_invoice_id": "b",
        "description": "d",
        "customer_email": None,
        "customer_name": None,
        "success_url": None,
        "cancel_url": None,
        "metadata_": {"cart": [1, 2], "note": "ü"},
        "fingerprint": "f" * 64,
        "received_msat": None,
        "created_at": now,
        "expires_at": now + timedelta(minutes=15),
        "paid_at": None,
        "expired_at": None,
        "updated_at": now,
    }
    values.update(extra)
    return Payment(**values)


async def test_hot_insert_and_reads_agree_with_the_orm(db, merchant):
    merchant_id, _ = merchant
    payment = make_payment(merchant_id, "repo-1")
    async with db.write_connection() as conn:
        await repository.insert_payment(conn, payment, "idem-repo-1")
    async with db.read_connection() as conn:
        by_id = await repository.fetch(conn, merchant_id, payment.id)
        by_order = await repository.fetch_by_order(conn, merchant_id, "repo-1")
        by_key = await repository.fetch_by_idempotency_key(conn, merchant_id, "idem-repo-1")
        other_tenant = await repository.fetch(conn, "mch_other", payment.id)
    async with db.reading() as session:
        orm = await repository.get(session, merchant_id, payment.id)
    assert other_tenant is None
    assert orm is not None and by_id is not None and by_order is not None and by_key is not None
    assert by_key.key_fingerprint == "f" * 64
    for attr in (
        "id",
        "order_id",
        "amount",
        "amount_sats",
        "metadata_",
        "created_at",
        "expires_at",
        "paid_at",
    ):
        assert getattr(by_id, attr) == getattr(orm, attr) == getattr(payment, attr), attr
        assert getattr(by_order, attr) == getattr(orm, attr)
    assert by_id.created_at.tzinfo is not None


async def test_rows_written_by_the_orm_read_back_through_the_hot_path(db, merchant):
    merchant_id, _ = merchant
    payment = make_payment(
        merchant_id, "repo-2", metadata_=None, paid_at=datetime(2026, 11, 23, 12, 5, tzinfo=UTC)
    )
    async with db.writing() as session:
        session.add(payment)
    async with db.read_connection() as conn:
        row = await repository.fetch(conn, merchant_id, payment.id)
    assert row is not None
    assert row.metadata_ is None
    assert row.paid_at == datetime(2026, 11, 23, 12, 5, tzinfo=UTC)
    assert row.created_at == payment.created_at


@pytest.mark.parametrize("idempotency_key", [None, "idem-dup"])
async def test_duplicate_order_raises_integrity_error(db, merchant, idempotency_key):
    merchant_id, _ = merchant
    async with db.write_connection() as conn:
        await repository.insert_payment(conn, make_payment(merchant_id, "dup"), None)
    with pytest.raises(IntegrityError):
        async with db.write_connection() as conn:
            await repository.insert_payment(conn, make_payment(merchant_id, "dup"), idempotency_key)
