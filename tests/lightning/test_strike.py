"""Strike specifics: BTC decimal amounts, receive requests found by payment hash, quotes that are
executed only when they match, Strike's error bodies."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from boltgate.lightning import bolt11
from boltgate.lightning.base import (
    InvoiceStatus,
    LightningProtocolError,
    LightningRejected,
    LightningUnavailable,
    LightningUnsupported,
    PaymentStatus,
)
from boltgate.lightning.connection import ConnectionUrlError
from boltgate.lightning.custodial import btc_text, msat_of_btc
from boltgate.lightning.registry import BackendEnv, open_backend
from boltgate.lightning.strike import Strike
from tests.lightning.contract.harness import foreign_invoice
from tests.lightning.fakes.opennode import backends, zero_amount_invoice
from tests.lightning.fakes.strike import RECEIVE_ONLY, FakeStrike

TOKEN = "3A7C0FFEE-strike-api-key-0123456789ABCDEF"
Opener = Callable[..., Strike]


@pytest.fixture
async def fake() -> AsyncIterator[FakeStrike]:
    async with FakeStrike.running() as made:
        yield made


@pytest.fixture
async def opener(fake: FakeStrike, tmp_path: Path) -> AsyncIterator[Opener]:
    async with backends(fake, tmp_path, Strike) as make:
        yield make


# -- connection URLs and amounts


async def test_the_public_host_is_mainnet_over_https(tmp_path: Path):
    backend = open_backend(f"strike://?key={TOKEN}", BackendEnv(data_dir=tmp_path, network="mainnet"))
    assert isinstance(backend, Strike)
    assert backend.api.base_url == "https://api.strike.me:443" and TOKEN not in repr(backend)
    await backend.close()
    for url in (f"strike://?key={TOKEN}", "strike://api.strike.me", f"strike://?key={TOKEN}&tls=0"):
        with pytest.raises(ConnectionUrlError, match="strike") as caught:
            open_backend(url, BackendEnv(data_dir=tmp_path, network="regtest"))
        assert TOKEN not in str(caught.value)


@pytest.mark.parametrize(
    ("msat", "text"),
    [
        (1_000, "0.00000001"),
        (21_000, "0.00000021"),
        (150_000_000_000, "1.50000000"),
        (2_100_000_000_000_000_000, "21000000.00000000"),
    ],
)
def test_amounts_are_exact_btc_decimal_strings(msat: int, text: str):
    assert btc_text("strike", msat) == text
    assert msat_of_btc("strike", text, "amount") == msat


@pytest.mark.parametrize("msat", [1, 999, 21_500])
def test_a_fraction_of_a_satoshi_cannot_be_asked(msat: int):
    with pytest.raises(LightningUnsupported, match="whole satoshis"):
        btc_text("strike", msat)


@pytest.mark.parametrize(
    ("text", "msat"),
    [("0.00000000001", 1), ("0.000000001", 100), ("0.1", 10_000_000_000), ("0", 0), ("5E-8", 5_000)],
)
def test_answered_amounts_are_converted_exactly(text: str, msat: int):
    assert msat_of_btc("strike", text, "amount") == msat


@pytest.mark.parametrize("text", ["0.000000000001", "-0.1", "NaN", "Infinity", "0.1 BTC", "", None, 0.1])
def test_answered_amounts_that_are_not_msat_are_protocol_errors(text: object):
    with pytest.raises(LightningProtocolError, match="amount"):
        msat_of_btc("strike", text, "amount")


# -- receiving


async def test_a_receive_request_is_asked_in_btc_with_a_bearer_key(fake: FakeStrike, opener: Opener):
    backend = opener()
    created = await backend.create_invoice(amount_msat=21_000, description="espresso", expiry_seconds=900)
    request = fake.seen[-1]
    assert (request.method, request.path) == ("POST", "/v1/receive-requests")
    assert request.headers["Authorization"] == f"Bearer {backend.api.key}"
    assert request.body == {
        "bolt11": {
            "amount": {"amount": "0.00000021", "currency": "BTC"},
            "description": "espresso",
            "expiryInSeconds": 900,
        },
        "targetCurrency": "BTC",
    }
    assert created.backend_invoice_id in fake.requests


async def test_descriptions_beyond_strikes_limit_and_hashes_are_committed_by_hash(
    fake: FakeStrike, opener: Opener
):
    backend = opener()
    long = "a tea of many words " * 20
    created = await backend.create_invoice(amount_msat=2_000, description=long, expiry_seconds=600)
    digest = hashlib.sha256(long.encode()).digest()
    assert fake.seen[-1].body["bolt11"]["descriptionHash"] == digest.hex()
    assert bolt11.decode(created.payment_request).description_hash == digest
    given = hashlib.sha256(b'[["text/plain","lnurl"]]').digest()
    hashed = await backend.create_invoice(amount_msat=3_000, description_hash=given, expiry_seconds=600)
    assert bolt11.decode(hashed.payment_request).description_hash == given


async def test_an_invoice_is_found_by_its_payment_hash_alone(fake: FakeStrike, opener: Opener):
    backend = opener()
    paid = await backend.create_invoice(amount_msat=42_000, description="paid", expiry_seconds=600)
    still_open = await backend.create_invoice(amount_msat=1_000, description="open", expiry_seconds=600)
    lapsed = await backend.create_invoice(amount_msat=1_000, description="lapsed", expiry_seconds=600)
    await fake.settle(paid.payment_hash)
    fake.requests[lapsed.backend_invoice_id].signed.expires_at = int(time.time()) - 1
    restarted = opener(*RECEIVE_ONLY)  # a new process with a receive-only key
    state = await restarted.lookup_invoice(paid.payment_hash)
    assert state.status is InvoiceStatus.SETTLED and state.amount_received_msat == 42_000
    assert state.settled_at is not None and abs(state.settled_at.timestamp() - time.time()) < 5
    assert fake.seen[-2].query == {"$paymentHash": paid.payment_hash}
    assert fake.seen[-1].path == f"/v1/receive-requests/{paid.backend_invoice_id}/receives"
    assert (await restarted.lookup_invoice(still_open.payment_hash)).status is InvoiceStatus.OPEN
    assert (await restarted.lookup_invoice(lapsed.payment_hash)).status is InvoiceStatus.CANCELED
    assert (await restarted.lookup_invoice("ab" * 32)).status is InvoiceStatus.UNKNOWN


async def test_strike_error_bodies_are_mapped_with_their_code(fake: FakeStrike, opener: Opener):
    with pytest.raises(LightningRejected, match="HTTP 401: UNAUTHORIZED: Unauthorized"):
        await opener(key=str(uuid.uuid4())).create_invoice(amount_msat=1_000, expiry_seconds=600)
    with pytest.raises(LightningRejected, match="HTTP 403: FORBIDDEN"):
        await opener("partner.payment.read").create_invoice(amount_msat=1_000, expiry_seconds=600)
    await fake.set_fault("error5xx")
    with pytest.raises(LightningUnavailable, match="HTTP 500: INTERNAL_SERVER_ERROR"):
        await opener().lookup_invoice("ab" * 32)


async def test_the_account_is_the_profile_asked_once(fake: FakeStrike, opener: Opener):
    backend = opener()
    info = await backend.node_info()
    assert (info.pubkey, info.alias, info.network) == (fake.account, "boltgate_fake", "regtest")
    assert await backend.node_info() == info
    assert [s.path for s in fake.seen] == ["/v1/accounts/profile"]
    with pytest.raises(LightningUnsupported, match="polls"):
        async for _ in backend.settlements(0):
            pass


# -- paying


async def test_a_quote_is_executed_and_the_payment_followed(fake: FakeStrike, opener: Opener):
    backend = opener()
    fake.fee_msat = 1_000
    result = await backend.pay_invoice(foreign_invoice(7_000)[0], max_fee_msat=1_000)
    assert result.status is PaymentStatus.SETTLED and result.fee_msat == 1_000
    assert result.preimage is None  # Strike does not return one
    quote, execute = fake.seen[-2:]
    assert quote.body["sourceCurrency"] == "BTC" and uuid.UUID(quote.headers["idempotency-key"])
    assert (execute.method, execute.path) == (
        "PATCH",
        f"/v1/payment-quotes/{next(iter(fake.quotes))}/execute",
    )
    assert (await backend.lookup_payment(result.payment_hash)).status is PaymentStatus.SETTLED
    assert fake.seen[-1].path == f"/v1/payments/{next(iter(fake.payments))}"


@pytest.mark.parametrize(
    ("outcome", "error"),
    [("failed", "LN_ROUTE_NOT_FOUND: Lightning route not found"), ("failed_state", "payment FAILED")],
)
async def test_a_failed_execution_is_failed(fake: FakeStrike, opener: Opener, outcome: str, error: str):
    await fake.set_outcome(outcome)
    result = await opener().pay_invoice(foreign_invoice(2_000)[0], max_fee_msat=1_000)
    assert result.status is PaymentStatus.FAILED and result.error == error


async def test_a_pending_payment_is_followed_until_done(fake: FakeStrike, opener: Opener):
    backend = opener()
    await fake.set_outcome("pending")
    result = await backend.pay_invoice(foreign_invoice(2_000)[0], max_fee_msat=1_000)
    assert result.status is PaymentStatus.PENDING
    invoice_again = next(s.body["lnInvoice"] for s in fake.seen if s.path == "/v1/payment-quotes/lightning")
    again = await backend.pay_invoice(invoice_again, max_fee_msat=1_000)
    assert again.status is PaymentStatus.PENDING and len(fake.quotes) == 1  # not paid twice
    fake.complete()
    assert (await backend.lookup_payment(result.payment_hash)).status is PaymentStatus.SETTLED


async def test_a_cut_execution_is_unknown_and_stays_unknown(fake: FakeStrike, opener: Opener):
    await fake.set_outcome("drop")
    backend = opener()
    result = await backend.pay_invoice(foreign_invoice(2_000)[0], max_fee_msat=1_000)
    assert result.status is PaymentStatus.UNKNOWN
    # Strike documents no way to find a payment by its invoice: the operator checks the account
    assert (await backend.lookup_payment(result.payment_hash)).status is PaymentStatus.UNKNOWN
    assert len(fake.payments) == 1


async def test_a_quote_is_not_executed_when_it_does_not_match(fake: FakeStrike, opener: Opener):
    backend = opener()
    fake.fee_msat = 2_000
    over = await backend.pay_invoice(foreign_invoice(5_000)[0], max_fee_msat=1_999)
    assert over.status is PaymentStatus.FAILED and "above the limit" in (over.error or "")
    fake.fee_msat, fake.quote_extra_msat = 0, 1_000
    with pytest.raises(LightningProtocolError, match="another amount"):
        await backend.pay_invoice(foreign_invoice(5_000)[0], max_fee_msat=1_000)
    assert not fake.payments and all(s.method != "PATCH" for s in fake.seen)


async def test_refusals_before_execution_send_nothing(fake: FakeStrike, opener: Opener):
    fake.balance_msat = 1_000
    low = await opener().pay_invoice(foreign_invoice(5_000)[0], max_fee_msat=1_000)
    assert low.status is PaymentStatus.FAILED and low.error == "BALANCE_TOO_LOW: Balance too low"
    with pytest.raises(LightningUnsupported, match="payment scopes"):
        await opener(*RECEIVE_ONLY).pay_invoice(foreign_invoice(500)[0], max_fee_msat=1_000)
    await fake.set_fault("error5xx")
    with pytest.raises(LightningUnavailable):  # the quote failed: nothing was paid
        await opener().pay_invoice(foreign_invoice(500)[0], max_fee_msat=1_000)
    assert not fake.payments


async def test_a_zero_amount_invoice_is_quoted_with_the_amount(fake: FakeStrike, opener: Opener):
    invoice = zero_amount_invoice()
    result = await opener().pay_invoice(invoice, amount_msat=12_000, max_fee_msat=0)
    assert result.status is PaymentStatus.SETTLED
    quote = next(s for s in fake.seen if s.path == "/v1/payment-quotes/lightning")
    assert quote.body == {
        "lnInvoice": invoice,
        "sourceCurrency": "BTC",
        "amount": {"amount": "0.00000012", "currency": "BTC"},
    }
