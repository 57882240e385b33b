"""The pure rules: conversion at the payment's rate, the fee cap, the refunded transition, LNURL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

from boltgate.config import Settings
from boltgate.payment.states import Refunded, Settled, Status, transition
from boltgate.refund import lnurl
from boltgate.refund.service import max_fee_msat, sats_of
from tests.refund.wallet import decode_lnurl

NOW = datetime(2026, 12, 4, tzinfo=UTC)


def test_sats_convert_at_the_payments_own_rate_rounded_down():
    eur = SimpleNamespace(amount="10.00", amount_sats=10_870)
    assert sats_of(eur, Decimal("3.33")) == 3_619  # 3,619.71
    assert sats_of(eur, Decimal("10.00")) == 10_870
    btc = SimpleNamespace(amount="0.00012345", amount_sats=12_345)
    assert sats_of(btc, Decimal("0.00000001")) == 1 and sats_of(btc, Decimal("0.00012344")) == 12_344


def test_the_fee_cap_is_a_share_with_a_floor():
    settings = Settings(refund_max_fee_percent=Decimal("1"), refund_min_fee_sats=10)
    assert max_fee_msat(settings, 100) == 10_000  # 1 sat share, 10 sat floor
    assert max_fee_msat(settings, 1_000_000) == 10_000_000


def test_only_a_paid_payment_becomes_refunded():
    later = NOW
    assert transition(Status.PAID, 1, later, Refunded(), NOW).status is Status.REFUNDED  # type: ignore[union-attr]
    for status in (Status.UNPAID, Status.EXPIRED, Status.REFUNDED):
        assert transition(status, 1, later, Refunded(), NOW) is None
    assert transition(Status.REFUNDED, 1, later, Settled(5, NOW), NOW) is None


def test_claim_links_round_trip_and_depend_on_the_key():
    url = lnurl.claim_url("https://pay.example", b"k" * 32, "ref_abc")
    encoded = lnurl.encode_lnurl(url)
    assert encoded.startswith("LNURL1") and decode_lnurl(encoded) == url
    assert lnurl.lnurlw_scheme(url) == "lnurlw://pay.example/lnurlw/ref_abc/" + lnurl.claim_tag(
        b"k" * 32, "ref_abc"
    )
    assert lnurl.claim_tag(b"k" * 32, "ref_abc") != lnurl.claim_tag(b"j" * 32, "ref_abc")


def test_lightning_address_urls_are_https_except_local_in_dev():
    assert (
        lnurl.address_url("alice@wallet.example", dev=True)
        == "https://wallet.example/.well-known/lnurlp/alice"
    )
    assert (
        lnurl.address_url("alice@127.0.0.1:8080", dev=True)
        == "http://127.0.0.1:8080/.well-known/lnurlp/alice"
    )
    assert lnurl.address_url("alice@127.0.0.1:8080", dev=False).startswith("https://")
