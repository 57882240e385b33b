"""OpenNode specifics: connection URLs, key permissions, charges found again, withdrawals followed."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from boltgate.lightning import bolt11
from boltgate.lightning.base import (
    InvoiceStatus,
    LightningProtocolError,
    LightningRejected,
    LightningUnsupported,
    PaymentStatus,
)
from boltgate.lightning.connection import ConnectionUrlError
from boltgate.lightning.opennode import OpenNode
from boltgate.lightning.registry import BackendEnv, open_backend
from tests.lightning.contract.harness import foreign_invoice
from tests.lightning.fakes.opennode import FakeOpenNode, backends, zero_amount_invoice

KEY = "8f2c3a7e-1b4d-4c55-9d1e-secretsecret"
Opener = Callable[..., OpenNode]


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenNode]:
    async with FakeOpenNode.running() as made:
        yield made


@pytest.fixture
async def opener(fake: FakeOpenNode, tmp_path: Path) -> AsyncIterator[Opener]:
    async with backends(fake, tmp_path, OpenNode) as make:
        yield make


# -- connection URLs


@pytest.mark.parametrize(
    ("host", "network"),
    [("", "mainnet"), ("api.opennode.com", "mainnet"), ("dev-api.opennode.com", "testnet")],
)
async def test_the_public_hosts_are_https_and_on_their_network(host: str, network: str, tmp_path: Path):
    backend = open_backend(f"opennode://{host}?key={KEY}", BackendEnv(data_dir=tmp_path, network=network))
    assert isinstance(backend, OpenNode)
    assert backend.api.base_url == f"https://{host or 'api.opennode.com'}:443" and backend.api.public
    info = await backend.node_info()
    assert info.network == network and info.backend == "opennode" and KEY not in info.pubkey
    assert KEY not in repr(backend)
    await backend.close()


def test_a_public_host_on_another_network_than_the_gateway_is_refused(tmp_path: Path):
    with pytest.raises(ConnectionUrlError, match="issues mainnet invoices") as caught:
        open_backend(f"opennode://?key={KEY}", BackendEnv(data_dir=tmp_path, network="regtest"))
    assert KEY not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("opennode://", "needs the API key"),
        ("opennode://?key=", "needs the API key"),
        (f"opennode://?key={KEY}%20x", "not a valid key"),
        (f"opennode://me:{KEY}@example.org", "not as a user or password"),
        (f"opennode://example.org/v1?key={KEY}", "must not have a path"),
        (f"opennode://example.org?api_key={KEY}", "unknown URL parameter"),
        (f"opennode://?key={KEY}&tls=0", "HTTPS only"),
        (f"opennode://example.org:99999?key={KEY}", "malformed URL"),
        (f"opennode://example.org?key={KEY}&timeout=soon", "timeout"),
    ],
)
def test_malformed_urls_say_what_is_wrong_without_the_key(url: str, says: str, tmp_path: Path):
    with pytest.raises(ConnectionUrlError, match=says) as caught:
        open_backend(url, BackendEnv(data_dir=tmp_path, network="mainnet"))
    assert "opennode" in str(caught.value) and KEY not in str(caught.value)


async def test_another_host_speaks_plain_http_when_told(tmp_path: Path):
    backend = open_backend(f"opennode://127.0.0.1:9?key={KEY}&tls=0", BackendEnv(data_dir=tmp_path))
    assert isinstance(backend, OpenNode)
    assert backend.api.base_url == "http://127.0.0.1:9" and backend.network == "regtest"
    await backend.close()


# -- receiving


async def test_a_charge_is_asked_in_whole_sats_with_the_key_as_is(fake: FakeOpenNode, opener: Opener):
    backend = opener()
    created = await backend.create_invoice(amount_msat=21_000, description="tea", expiry_seconds=601)
    request = fake.seen[-1]
    assert (request.method, request.path) == ("POST", "/v1/charges")
    assert request.body == {"amount": 21, "description": "tea", "ttl": 11}  # minutes, rounded up
    assert request.headers["Authorization"] == backend.api.key
    decoded = bolt11.decode(created.payment_request)
    assert decoded.expiry == 660 and created.expires_at.timestamp() == decoded.timestamp + 660
    assert created.backend_invoice_id in fake.charges


@pytest.mark.parametrize(
    ("ask", "says"),
    [
        ({"amount_msat": 21_500}, "whole satoshis"),
        ({"amount_msat": 600_000_000_000}, "above 5 BTC"),
        ({"amount_msat": 1_000, "expiry_seconds": 300}, "10 minutes to 24 hours"),
        ({"amount_msat": 1_000, "expiry_seconds": 86_401}, "10 minutes to 24 hours"),
        ({"amount_msat": 1_000, "description_hash": b"\x01" * 32}, "description hash"),
    ],
)
async def test_what_a_charge_cannot_be_is_refused_before_asking(
    fake: FakeOpenNode, opener: Opener, ask: dict[str, object], says: str
):
    with pytest.raises(LightningUnsupported, match=says):
        await opener().create_invoice(**ask)  # type: ignore[arg-type]
    assert not fake.seen


async def test_a_charge_is_looked_up_by_its_id(fake: FakeOpenNode, opener: Opener):
    backend = opener("invoice")
    paid = await backend.create_invoice(amount_msat=42_000, description="paid", expiry_seconds=600)
    lapsed = await backend.create_invoice(amount_msat=1_000, description="lapsed", expiry_seconds=600)
    await fake.settle(paid.payment_hash)
    fake.expire(lapsed.payment_hash)
    state = await backend.lookup_invoice(paid.payment_hash, backend_invoice_id=paid.backend_invoice_id)
    assert state.status is InvoiceStatus.SETTLED and state.amount_received_msat == 42_000
    assert state.settled_at is not None and abs(state.settled_at.timestamp() - time.time()) < 5
    assert fake.seen[-1].path == f"/v2/charge/{paid.backend_invoice_id}"
    lapsed_state = await backend.lookup_invoice(
        lapsed.payment_hash, backend_invoice_id=lapsed.backend_invoice_id
    )
    assert lapsed_state.status is InvoiceStatus.CANCELED
    gone = await backend.lookup_invoice(paid.payment_hash, backend_invoice_id="no-such-charge")
    assert gone.status is InvoiceStatus.UNKNOWN
    with pytest.raises(LightningProtocolError, match="not this invoice"):
        await backend.lookup_invoice(paid.payment_hash, backend_invoice_id=lapsed.backend_invoice_id)


async def test_a_paid_charge_is_found_by_its_hash_alone_with_a_read_key(fake: FakeOpenNode, opener: Opener):
    paid = await opener().create_invoice(amount_msat=5_000, description="a", expiry_seconds=600)
    also_paid = await opener().create_invoice(amount_msat=7_000, description="c", expiry_seconds=600)
    still_open = await opener().create_invoice(amount_msat=6_000, description="b", expiry_seconds=600)
    await fake.settle(paid.payment_hash)
    await fake.settle(also_paid.payment_hash)
    restarted = opener("invoice", "read")  # a new process: knows no charge id
    state = await restarted.lookup_invoice(paid.payment_hash)
    assert state.status is InvoiceStatus.SETTLED and state.amount_received_msat == 5_000
    assert [s.path for s in fake.seen[-2:]] == ["/v1/charges", f"/v2/charge/{paid.backend_invoice_id}"]
    # the list taught it the other paid charge's id
    assert (await restarted.lookup_invoice(also_paid.payment_hash)).amount_received_msat == 7_000
    assert (
        fake.seen[-1].path == f"/v2/charge/{also_paid.backend_invoice_id}"
        and fake.seen[-2].path != "/v1/charges"
    )
    # OpenNode lists paid charges only: an open one needs its id
    assert (await restarted.lookup_invoice(still_open.payment_hash)).status is InvoiceStatus.UNKNOWN
    # an Invoice key may not list: unknown by hash, known by id
    invoice_only = opener("invoice")
    assert (await invoice_only.lookup_invoice(paid.payment_hash)).status is InvoiceStatus.UNKNOWN
    by_id = await invoice_only.lookup_invoice(paid.payment_hash, backend_invoice_id=paid.backend_invoice_id)
    assert by_id.status is InvoiceStatus.SETTLED


async def test_opennode_errors_are_mapped_with_their_message(fake: FakeOpenNode, opener: Opener):
    wrong = opener(key="not-a-key-of-this-account")
    with pytest.raises(LightningRejected, match=r"HTTP 401: Unauthorized"):
        await wrong.create_invoice(amount_msat=1_000, expiry_seconds=600)
    await fake.set_fault("wrong_shape")
    with pytest.raises(LightningProtocolError, match=r"without a valid .data."):
        await opener().create_invoice(amount_msat=1_000, expiry_seconds=600)


async def test_settlements_are_not_pushed(opener: Opener):
    with pytest.raises(LightningUnsupported, match="polls"):
        async for _ in opener().settlements(0):
            pass


async def test_the_account_identity_is_stable_per_key(fake: FakeOpenNode, opener: Opener):
    key = fake.add_key()
    one, same, other = opener(key=key), opener(key=key), opener()
    first = await one.node_info()
    assert first == await same.node_info() and first.pubkey != (await other.node_info()).pubkey
    assert key not in first.pubkey and not fake.seen  # asks nothing


# -- paying


async def test_a_withdrawal_pays_and_is_followed_by_its_id(fake: FakeOpenNode, opener: Opener):
    backend = opener()
    fake.fee_msat = 2_000
    invoice, _preimage = foreign_invoice(7_000)
    result = await backend.pay_invoice(invoice, max_fee_msat=5_000)
    assert result.status is PaymentStatus.SETTLED and result.fee_msat == 2_000
    assert result.preimage is None  # OpenNode does not return one
    assert fake.seen[-1].body == {"type": "ln", "address": invoice}
    looked = await backend.lookup_payment(result.payment_hash)
    assert looked.status is PaymentStatus.SETTLED
    assert fake.seen[-1].path.startswith("/v1/withdrawal/")


@pytest.mark.parametrize(
    ("outcome", "status"), [("failed", PaymentStatus.FAILED), ("pending", PaymentStatus.PENDING)]
)
async def test_withdrawal_outcomes(fake: FakeOpenNode, opener: Opener, outcome: str, status: PaymentStatus):
    backend = opener()
    await fake.set_outcome(outcome)
    result = await backend.pay_invoice(foreign_invoice(3_000)[0], max_fee_msat=1_000)
    assert result.status is status
    assert (await backend.lookup_payment(result.payment_hash)).status is status
    if outcome == "failed":
        assert result.error == "no_route"


async def test_a_cut_answer_is_unknown_then_found_in_the_withdrawals(fake: FakeOpenNode, opener: Opener):
    await fake.set_outcome("drop")
    invoice, _preimage = foreign_invoice(4_000)
    result = await opener().pay_invoice(invoice, max_fee_msat=1_000)
    assert result.status is PaymentStatus.UNKNOWN
    restarted = opener("read")
    looked = await restarted.lookup_payment(result.payment_hash)
    assert looked.status is PaymentStatus.SETTLED and looked.preimage is None
    assert fake.seen[-1].path == "/v1/withdrawals"
    assert (await opener("invoice").lookup_payment(result.payment_hash)).status is PaymentStatus.UNKNOWN
    assert (await restarted.lookup_payment("cd" * 32)).status is PaymentStatus.UNKNOWN


async def test_an_explicit_refusal_is_failed_and_an_outage_is_unknown(fake: FakeOpenNode, opener: Opener):
    backend = opener()
    fake.balance_msat = 1_000
    refused = await backend.pay_invoice(foreign_invoice(9_000)[0], max_fee_msat=1_000)
    assert refused.status is PaymentStatus.FAILED and refused.error == "Insufficient balance"
    await fake.set_fault("error5xx")
    outage = await backend.pay_invoice(foreign_invoice(500)[0], max_fee_msat=1_000)
    assert outage.status is PaymentStatus.UNKNOWN  # never FAILED: it may have been paid
    assert not fake.withdrawals


async def test_an_invoice_key_cannot_pay(fake: FakeOpenNode, opener: Opener):
    with pytest.raises(LightningUnsupported, match="Withdrawals permission"):
        await opener("invoice", "read").pay_invoice(foreign_invoice(1_000)[0], max_fee_msat=1_000)
    assert not fake.withdrawals


async def test_invoices_that_cannot_be_paid_as_asked_are_failed_before_sending(
    fake: FakeOpenNode, opener: Opener
):
    backend = opener()
    mainnet, _ = foreign_invoice(1_000, network="mainnet")
    assert (await backend.pay_invoice(mainnet)).status is PaymentStatus.FAILED
    assert (await backend.pay_invoice("lnbcrt1garbage")).status is PaymentStatus.FAILED
    priced, _ = foreign_invoice(2_000)
    assert (await backend.pay_invoice(priced, amount_msat=3_000)).status is PaymentStatus.FAILED
    open_amount = zero_amount_invoice()
    assert (await backend.pay_invoice(open_amount)).status is PaymentStatus.FAILED
    with pytest.raises(LightningUnsupported, match="whole satoshis"):
        await backend.pay_invoice(open_amount, amount_msat=1_500)
    assert not fake.seen
    paid = await backend.pay_invoice(open_amount, amount_msat=8_000)
    assert paid.status is PaymentStatus.SETTLED
    assert fake.seen[-1].body == {"type": "ln", "address": open_amount, "amount": 8}


async def test_an_invoice_is_not_paid_twice_unless_it_failed(fake: FakeOpenNode, opener: Opener):
    backend = opener()
    invoice, _preimage = foreign_invoice(3_000)
    await fake.set_outcome("failed")
    assert (await backend.pay_invoice(invoice, max_fee_msat=0)).status is PaymentStatus.FAILED
    await fake.set_outcome("settled")
    assert (await backend.pay_invoice(invoice, max_fee_msat=0)).status is PaymentStatus.SETTLED
    assert (await backend.pay_invoice(invoice, max_fee_msat=0)).status is PaymentStatus.SETTLED
    assert len(fake.withdrawals) == 2 and fake.seen[-1].path.startswith("/v1/withdrawal/")
