"""The pure lifecycle function, with a frozen clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from boltgate.payment.states import Expire, Settled, Status, transition

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
EXPIRES = NOW + timedelta(minutes=15)


def test_settlement_pays_an_unpaid_payment():
    change = transition(Status.UNPAID, 1000, EXPIRES, Settled(1000, NOW), NOW)
    assert change is not None
    assert change.status is Status.PAID
    assert change.emit == ("payment.completed",)


def test_late_settlement_pays_an_expired_payment():
    change = transition(Status.EXPIRED, 1000, EXPIRES, Settled(1000, NOW), NOW + timedelta(hours=1))
    assert change is not None and change.status is Status.PAID


def test_overpayment_counts_and_underpayment_does_not():
    assert transition(Status.UNPAID, 1000, EXPIRES, Settled(1500, NOW), NOW) is not None
    assert transition(Status.UNPAID, 1000, EXPIRES, Settled(999, NOW), NOW) is None


def test_paid_and_refunded_ignore_settlements():
    for status in (Status.PAID, Status.REFUNDED):
        assert transition(status, 1000, EXPIRES, Settled(1000, NOW), NOW) is None


def test_expiry_only_after_expires_at():
    assert transition(Status.UNPAID, 1000, EXPIRES, Expire(), EXPIRES - timedelta(seconds=1)) is None
    change = transition(Status.UNPAID, 1000, EXPIRES, Expire(), EXPIRES)
    assert change is not None
    assert change.status is Status.EXPIRED
    assert change.emit == ("payment.expired",)


def test_expiry_never_touches_a_paid_payment():
    assert transition(Status.PAID, 1000, EXPIRES, Expire(), EXPIRES + timedelta(days=1)) is None
    assert transition(Status.EXPIRED, 1000, EXPIRES, Expire(), EXPIRES + timedelta(days=1)) is None
