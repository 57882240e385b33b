"""One contract, every backend: each ``h_<kind>.py`` harness runs every case here.

The gateway must behave the same whichever node or wallet a merchant runs, so every backend is
held to the same answers: invoices exactly as asked (checked by decoding them), look-ups,
settlements (pushed where the backend pushes), outgoing payments in four outcomes, and failures
mapped into :mod:`boltgate.lightning.base`'s error tree without leaking a secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import pkgutil
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest

from boltgate.lightning import bolt11
from boltgate.lightning.base import (
    InvoiceStatus,
    LightningBackend,
    LightningError,
    LightningProtocolError,
    LightningRejected,
    LightningTimeout,
    LightningUnavailable,
    PaymentStatus,
    Settlement,
)
from tests.lightning.contract import harness as harness_module
from tests.lightning.contract.harness import Harness, foreign_invoice

HERE = Path(__file__).parent


def _harness_modules() -> list[ModuleType]:
    names = sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if m.name.startswith("h_"))
    return [importlib.import_module(f"tests.lightning.contract.{name}") for name in names]


MODULES = _harness_modules()


@pytest.fixture(params=MODULES, ids=[m.KIND for m in MODULES])
async def h(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    async with request.param.harness(tmp_path) as made:
        yield made


def needs_fault(h: Harness, name: str) -> None:
    if name not in h.faults:
        pytest.skip(f"the {h.kind} harness cannot inject {name!r}")


def needs_feature(h: Harness, name: str) -> None:
    if name in h.lacks:
        pytest.skip(f"{h.kind}: {h.lacks[name]}")


def assert_no_secret(h: Harness, *texts: str) -> None:
    for text in texts:
        for secret in h.secrets:
            assert secret not in text, f"a secret of the {h.kind} connection leaked: {text[:200]}"


async def next_settlement(
    backend: LightningBackend, after: int, payment_hash: str, wait: float
) -> Settlement:
    async def first() -> Settlement:
        async for settlement in backend.settlements(after):
            if settlement.payment_hash == payment_hash:
                return settlement
        raise AssertionError("the settlement stream ended")

    return await asyncio.wait_for(first(), wait)


# -- receiving


async def test_invoice_is_exactly_what_was_asked(h: Harness):
    created = await h.backend.create_invoice(amount_msat=21_000, description="coffee #7", expiry_seconds=900)
    decoded = bolt11.decode(created.payment_request, require_payment_secret=False)
    assert decoded.amount_msat == created.amount_msat == 21_000
    assert decoded.payment_hash.hex() == created.payment_hash
    assert decoded.description == "coffee #7"
    assert decoded.currency == bolt11.NETWORK_PREFIXES[h.network]
    assert abs(decoded.expiry - 900) <= 1
    assert abs(created.expires_at.timestamp() - (time.time() + 900)) < 30
    assert created.backend_invoice_id
    state = await h.backend.lookup_invoice(
        created.payment_hash, backend_invoice_id=created.backend_invoice_id
    )
    assert state.status is InvoiceStatus.OPEN and state.amount_received_msat == 0


async def test_invoice_commits_to_a_description_hash(h: Harness):
    needs_feature(h, "description_hash")
    digest = hashlib.sha256(b'[["text/plain","a long description"]]').digest()
    created = await h.backend.create_invoice(amount_msat=5_000, description_hash=digest, expiry_seconds=600)
    decoded = bolt11.decode(created.payment_request, require_payment_secret=False)
    assert decoded.description_hash == digest and decoded.amount_msat == 5_000


async def test_an_unknown_invoice_is_unknown(h: Harness):
    state = await h.backend.lookup_invoice("ab" * 32)
    assert state.status is InvoiceStatus.UNKNOWN


async def test_a_paid_invoice_is_settled_with_its_amount(h: Harness):
    created = await h.backend.create_invoice(amount_msat=42_000, description="paid", expiry_seconds=600)
    await h.settle(created.payment_hash)
    deadline = time.monotonic() + 10
    while True:
        state = await h.backend.lookup_invoice(
            created.payment_hash, backend_invoice_id=created.backend_invoice_id
        )
        if state.status is InvoiceStatus.SETTLED or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert state.status is InvoiceStatus.SETTLED
    assert state.amount_received_msat == 42_000
    assert state.settled_at is not None and state.settled_at.tzinfo is not None
    assert abs((datetime.now(UTC) - state.settled_at).total_seconds()) < 60


async def test_settlements_are_pushed(h: Harness):
    if not h.streams:
        pytest.skip(f"{h.kind} has no push: settlements are found by polling the open invoices")
    first = await h.backend.create_invoice(amount_msat=1_000, description="one", expiry_seconds=600)
    await h.settle(first.payment_hash)
    one = await next_settlement(h.backend, 0, first.payment_hash, 15)
    assert one.amount_received_msat == 1_000
    second = await h.backend.create_invoice(amount_msat=2_000, description="two", expiry_seconds=600)
    stream = asyncio.ensure_future(next_settlement(h.backend, one.settle_index, second.payment_hash, 15))
    await asyncio.sleep(0.3)  # subscribed before the payment, as the watcher is
    await h.settle(second.payment_hash)
    two = await stream
    assert two.amount_received_msat == 2_000
    if h.backend.resumable:
        assert two.settle_index > one.settle_index
        # resuming after the second settlement does not replay the first
        replay = asyncio.ensure_future(next_settlement(h.backend, two.settle_index, first.payment_hash, 1.5))
        with pytest.raises(TimeoutError):
            await replay


async def test_a_dropped_stream_raises_rather_than_hangs(h: Harness):
    if not h.streams:
        pytest.skip(f"{h.kind} has no push")
    needs_fault(h, "refused")

    async def drain() -> None:
        async for _ in h.backend.settlements(0):
            pass

    task = asyncio.ensure_future(drain())
    await asyncio.sleep(0.5)
    await h.fault("refused")
    try:
        with pytest.raises(LightningUnavailable) as caught:
            await asyncio.wait_for(task, 30)
        assert_no_secret(h, str(caught.value), repr(caught.value))
    finally:
        await h.fault("ok")


# -- paying


async def _pay(h: Harness, outcome: str) -> tuple[str, str, object]:
    if h.pay_outcome is None:
        pytest.skip(f"the {h.kind} harness does not pay")
    if outcome not in h.outcomes:
        pytest.skip(f"the {h.kind} harness cannot make a payment {outcome!r}")
    invoice, preimage = foreign_invoice(7_000, network=h.network)
    await h.pay_outcome(outcome)
    result = await h.backend.pay_invoice(invoice, max_fee_msat=1_000)
    return invoice, preimage, result


async def test_a_settled_payment_has_the_preimage(h: Harness):
    invoice, preimage, result = await _pay(h, "settled")
    assert result.status is PaymentStatus.SETTLED
    assert result.preimage == preimage
    assert hashlib.sha256(bytes.fromhex(result.preimage)).hexdigest() == result.payment_hash
    assert 0 <= result.fee_msat <= 1_000
    looked = await h.backend.lookup_payment(result.payment_hash)
    assert looked.status is PaymentStatus.SETTLED and looked.preimage == preimage


async def test_a_failed_payment_is_failed(h: Harness):
    _invoice, _preimage, result = await _pay(h, "failed")
    assert result.status is PaymentStatus.FAILED and result.preimage is None and result.error


async def test_a_pending_payment_is_pending(h: Harness):
    _invoice, _preimage, result = await _pay(h, "pending")
    assert result.status is PaymentStatus.PENDING


async def test_a_cut_answer_is_unknown_and_the_lookup_tells(h: Harness):
    invoice, preimage, result = await _pay(h, "drop")
    assert result.status is PaymentStatus.UNKNOWN  # never FAILED: the node may have paid
    payment_hash = bolt11.decode(invoice).payment_hash.hex()
    looked = await h.backend.lookup_payment(payment_hash)
    assert looked.status is PaymentStatus.SETTLED and looked.preimage == preimage


async def test_an_unknown_outgoing_payment_is_unknown(h: Harness):
    if h.pay_outcome is None:
        pytest.skip(f"the {h.kind} harness does not pay")
    assert (await h.backend.lookup_payment("cd" * 32)).status is PaymentStatus.UNKNOWN


# -- failing


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("refused", LightningUnavailable),
        ("error5xx", LightningUnavailable),
        ("slow", LightningTimeout),
        ("garbage", LightningProtocolError),
        ("wrong_amount", LightningProtocolError),
    ],
)
async def test_failures_map_into_the_error_tree(h: Harness, fault: str, error: type[LightningError]):
    needs_fault(h, fault)
    await h.fault(fault)
    try:
        with pytest.raises(error) as caught:
            await h.backend.create_invoice(amount_msat=3_000, description="x", expiry_seconds=600)
        assert caught.value.backend == h.kind
        assert h.kind in str(caught.value)
        assert_no_secret(h, str(caught.value), repr(caught.value))
        if fault != "wrong_amount":
            with pytest.raises(error):
                await h.backend.lookup_invoice("ab" * 32)
    finally:
        await h.fault("ok")
    # and it recovers by itself once the counterpart does
    created = await h.backend.create_invoice(amount_msat=3_000, description="again", expiry_seconds=600)
    assert created.amount_msat == 3_000


async def test_wrong_credentials_are_rejected(h: Harness):
    if h.wrong_credentials is None:
        pytest.skip(f"{h.kind} has no credentials")
    backend = h.wrong_credentials()
    try:
        with pytest.raises(LightningRejected) as caught:
            await backend.create_invoice(amount_msat=1_000, description="x", expiry_seconds=600)
        assert_no_secret(h, str(caught.value), repr(caught.value), repr(backend))
    finally:
        await backend.close()


async def test_node_info_names_the_backend(h: Harness):
    info = await h.backend.node_info()
    assert info.backend == h.kind == h.backend.name
    assert info.network == h.network
    assert_no_secret(h, repr(info), repr(h.backend))


def test_every_harness_declares_known_faults():
    for module in MODULES:
        assert module.KIND
    assert set(harness_module.FAULTS) >= {"ok", "refused", "error5xx", "slow", "garbage", "wrong_amount"}
