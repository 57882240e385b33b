"""Nostr Wallet Connect specifics: connection strings, what is ignored on the relays (wrong
author, another request, forged signatures), encryption, several relays, permissions, payments
still in flight, and notifications taken as hints. The contract suite covers the rest."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import ipaddress
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import coincurve
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
    LightningUnsupported,
    PaymentStatus,
)
from boltgate.lightning.connection import ConnectionUrlError
from boltgate.lightning.nwc import REPLAY_PAGE, NwcBackend
from boltgate.lightning.registry import BackendEnv, open_backend
from tests.lightning.contract.harness import foreign_invoice
from tests.lightning.fakes.nwc_wallet import ALL_METHODS, FakeWallet
from tests.lightning.fakes.relay import FakeRelay

WALLET = "b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4"
SECRET = "71a8c14c1407c113601079c4302dab36460f0ccd0ad506f1f2dc73b5100e4f3c"
RELAY = "wss%3A%2F%2Frelay.example.com"


@dataclass
class Setup:
    relays: list[FakeRelay]
    wallet: FakeWallet
    secret: str
    env: BackendEnv
    opened: list[LightningBackend] = field(default_factory=list)

    def open(self, secret: str | None = None, **params: Any) -> NwcBackend:
        params.setdefault("timeout", 2)
        params.setdefault("pay_timeout", 2)
        backend = open_backend(self.wallet.url(secret or self.secret, **params), self.env)
        assert isinstance(backend, NwcBackend)
        self.opened.append(backend)
        return backend


@contextlib.asynccontextmanager
async def nwc(tmp_path: Path, *, relays: int = 1, **wallet: Any) -> AsyncIterator[Setup]:
    started = [FakeRelay() for _ in range(relays)]
    for relay in started:
        await relay.start()
    fake = FakeWallet([relay.url for relay in started], **wallet)
    await fake.start()
    await fake.connected()
    setup = Setup(started, fake, fake.connect_client(), BackendEnv(data_dir=tmp_path))
    try:
        yield setup
    finally:
        for backend in setup.opened:
            await backend.close()
        await fake.stop()
        for relay in started:
            await relay.stop()


# -- connection strings


def test_both_schemes_and_several_relays_open(tmp_path):
    env = BackendEnv(data_dir=tmp_path)
    for scheme in ("nostr+walletconnect", "nwc", "NWC"):
        url = f"{scheme}://{WALLET}?relay={RELAY}&relay=ws%3A%2F%2F127.0.0.1%3A7777&secret={SECRET}&lud16=a%40b.c"
        backend = open_backend(url, env)
        assert isinstance(backend, NwcBackend) and backend.name == "nwc" and not backend.resumable
        assert SECRET not in repr(backend)
        assert "wss://relay.example.com" in repr(backend) and "ws://127.0.0.1:7777" in repr(backend)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (f"nwc://{WALLET[:-2]}?relay={RELAY}&secret={SECRET}", "public key"),
        (f"nwc://{'zz' * 32}?relay={RELAY}&secret={SECRET}", "public key"),
        (f"nwc://{'00' * 32}?relay={RELAY}&secret={SECRET}", "public key"),  # not a point
        (f"nwc://?relay={RELAY}&secret={SECRET}", "public key"),
        (f"nwc://{WALLET}/extra?relay={RELAY}&secret={SECRET}", "path"),
        (f"nwc://{WALLET}:80?relay={RELAY}&secret={SECRET}", "nostr+walletconnect://"),
        (f"nwc://{WALLET}?secret={SECRET}", "at least one relay"),
        (f"nwc://{WALLET}?relay=&secret={SECRET}", "at least one relay"),
        (f"nwc://{WALLET}?relay=https%3A%2F%2Frelay.example.com&secret={SECRET}", "wss://"),
        (f"nwc://{WALLET}?relay=wss%3A%2F%2F&secret={SECRET}", "host"),
        (f"nwc://{WALLET}?relay=wss%3A%2F%2Fu%3Ap%40relay.example.com&secret={SECRET}", "password"),
        (f"nwc://{WALLET}?relay={RELAY}", "secret"),
        (f"nwc://{WALLET}?relay={RELAY}&secret={SECRET[:-1]}", "64 hex"),
        (f"nwc://{WALLET}?relay={RELAY}&secret={SECRET[:-1]}g", "64 hex"),
        (f"nwc://{WALLET}?relay={RELAY}&secret={'00' * 32}", "not a valid"),
        (f"nwc://{WALLET}?relay={RELAY}&secret={'ff' * 32}", "not a valid"),  # >= the curve order
        (f"nwc://{WALLET}?relay={RELAY}&secret={SECRET}&pay_timeout=soon", "pay_timeout"),
        (f"nwc://{WALLET}?relay={RELAY}&secret={SECRET}&pay_timeout=0", "pay_timeout"),
        (f"nwc://{WALLET}?relay={RELAY}&secret={SECRET}&timeout=-1", "timeout"),
    ],
)
def test_malformed_connection_strings_say_what_is_wrong(tmp_path, url, says):
    with pytest.raises(ConnectionUrlError) as caught:
        open_backend(url, BackendEnv(data_dir=tmp_path))
    message = str(caught.value)
    assert message.startswith("nwc:") and says in message
    assert SECRET not in message and SECRET[:-1] not in message


async def test_a_merchants_relays_must_be_public_or_allowed(tmp_path):
    if "guard" not in {f.name for f in dataclasses.fields(BackendEnv)}:
        pytest.skip("this build has no outbound-address guard for backends")
    async with nwc(tmp_path) as setup:
        url = setup.wallet.url(setup.secret, timeout=2)
        guarded = open_backend(url, BackendEnv(data_dir=tmp_path, guard=()))
        allowed = open_backend(
            url, BackendEnv(data_dir=tmp_path, guard=(ipaddress.ip_network("127.0.0.0/8"),))
        )
        setup.opened += [guarded, allowed]
        with pytest.raises(LightningUnavailable, match="not allowed"):
            await guarded.create_invoice(amount_msat=1_000, description="x")
        assert not any(e["kind"] == 23194 for e in setup.relays[0].received)
        assert (await allowed.create_invoice(amount_msat=1_000, description="x")).amount_msat == 1_000


# -- what the relays carry


async def test_the_request_waits_for_its_subscription_and_says_how_it_is_encrypted(tmp_path):
    async with nwc(tmp_path) as setup:
        backend = setup.open()
        created = await backend.create_invoice(amount_msat=10_000, description="order 1", expiry_seconds=600)
        relay = setup.relays[0]
        request = next(e for e in relay.received if e["kind"] == 23194)
        tags = {tag[0]: tag[1:] for tag in request["tags"]}
        assert tags["p"] == [setup.wallet.pubkey] and tags["encryption"] == ["nip44_v2"]
        assert time.time() < int(tags["expiration"][0]) <= time.time() + 2 + 31
        assert "order 1" not in request["content"]  # encrypted
        positions = {
            "req": next(
                i for i, m in enumerate(relay.messages) if m[0] == "REQ" and request["id"] in str(m[2:])
            ),
            "event": next(
                i for i, m in enumerate(relay.messages) if m[0] == "EVENT" and m[1]["id"] == request["id"]
            ),
        }
        assert positions["req"] < positions["event"]  # subscribed before publishing
        assert setup.wallet.requests[-1] == (
            "make_invoice",
            {"amount": 10_000, "expiry": 600, "description": "order 1"},
        )
        assert created.backend_invoice_id == created.payment_hash


@pytest.mark.parametrize("decoy", ["forged", "impostor", "other_request"])
async def test_answers_that_are_not_the_wallets_answer_are_ignored(tmp_path, decoy):
    async with nwc(tmp_path) as setup:
        setup.relays[0].hostile = True  # forwards everything, checks nothing
        setup.wallet.decoys = [decoy]  # each decoy says RESTRICTED before the real answer
        backend = setup.open()
        created = await backend.create_invoice(amount_msat=2_000, description="decoyed", expiry_seconds=600)
        assert created.amount_msat == 2_000
        delivered = [e for e in setup.relays[0].received if e["kind"] == 23195]
        assert len(delivered) == 2  # the decoy did reach the client


async def test_a_forged_answer_alone_is_no_answer(tmp_path):
    async with nwc(tmp_path) as setup:
        setup.relays[0].hostile = True
        setup.wallet.decoys = ["forged"]
        setup.wallet.mode = "slow"  # the real answer comes after the client gave up
        backend = setup.open(timeout=1)
        with pytest.raises(LightningTimeout):
            await backend.lookup_invoice("ab" * 32)


async def test_an_answer_that_is_not_a_nip47_response_is_a_protocol_error(tmp_path):
    async with nwc(tmp_path) as setup:
        setup.wallet.mode = "garbage_json"
        with pytest.raises(LightningProtocolError):
            await setup.open().create_invoice(amount_msat=1_000, description="x")


# -- encryption and permissions


@pytest.mark.parametrize("encryption", ["nip04", None])
async def test_a_nip04_only_wallet_is_unsupported(tmp_path, encryption):
    async with nwc(tmp_path, encryption=encryption) as setup:
        backend = setup.open()
        with pytest.raises(LightningUnsupported, match="NIP-04") as caught:
            await backend.create_invoice(amount_msat=1_000, description="x")
        assert caught.value.backend == "nwc"
        assert setup.wallet.requests == []  # nothing was sent


async def test_a_receive_only_connection_cannot_pay_and_nothing_is_sent(tmp_path):
    async with nwc(tmp_path, methods=frozenset({"make_invoice", "lookup_invoice", "notifications"})) as setup:
        backend = setup.open()
        invoice, _ = foreign_invoice(5_000)
        with pytest.raises(LightningUnsupported, match="pay_invoice"):
            await backend.pay_invoice(invoice)
        assert all(method != "pay_invoice" for method, _ in setup.wallet.requests)
        info = await backend.node_info()  # no get_info: the wallet service's key stands in
        assert info.pubkey == setup.wallet.pubkey and info.network == "regtest"


async def test_a_method_the_connection_may_not_use_is_rejected(tmp_path):
    async with nwc(tmp_path) as setup:
        secret = setup.wallet.connect_client(frozenset({"make_invoice", "lookup_invoice"}))
        invoice, _ = foreign_invoice(5_000)
        with pytest.raises(LightningRejected, match="RESTRICTED"):
            await setup.open(secret).pay_invoice(invoice)


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("UNAUTHORIZED", LightningRejected),
        ("RESTRICTED", LightningRejected),
        ("QUOTA_EXCEEDED", LightningRejected),
        ("OTHER", LightningRejected),
        ("NOT_IMPLEMENTED", LightningUnsupported),
        ("UNSUPPORTED_ENCRYPTION", LightningUnsupported),
        ("RATE_LIMITED", LightningUnavailable),
        ("INTERNAL", LightningUnavailable),
    ],
)
async def test_wallet_error_codes_map_into_the_tree(tmp_path, code, error):
    async with nwc(tmp_path) as setup:
        setup.wallet.mode = f"error:{code}"
        with pytest.raises(error) as caught:
            await setup.open().create_invoice(amount_msat=1_000, description="x")
        assert type(caught.value) is error and code in str(caught.value)


# -- several relays


async def test_one_relay_down_is_not_an_outage(tmp_path):
    async with nwc(tmp_path, relays=2) as setup:
        await setup.relays[0].stop()
        backend = setup.open()
        created = await backend.create_invoice(amount_msat=3_000, description="two relays")
        assert (await backend.lookup_invoice(created.payment_hash)).status is InvoiceStatus.OPEN
        await setup.relays[1].stop()
        with pytest.raises(LightningUnavailable) as caught:
            await backend.lookup_invoice(created.payment_hash)
        assert "127.0.0.1" in str(caught.value)  # which relays, by host and port only


async def test_the_answer_is_taken_from_whichever_relay_carries_it(tmp_path):
    async with nwc(tmp_path, relays=2) as setup:
        quiet = FakeRelay()  # a relay the wallet does not listen on
        await quiet.start()
        try:
            backend = setup.open(relays=[quiet.url, setup.relays[1].url])
            created = await backend.create_invoice(amount_msat=4_000, description="either relay")
            assert created.amount_msat == 4_000
            assert any(e["kind"] == 23194 for e in quiet.received)  # published everywhere
        finally:
            await quiet.stop()


async def test_settlements_continue_while_one_relay_remains(tmp_path):
    async with nwc(tmp_path, relays=2) as setup:
        backend = setup.open()
        first = await backend.create_invoice(amount_msat=1_000, description="a")
        stream = backend.settlements(0)
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.3)
        await setup.relays[0].stop()
        await setup.wallet.settle(first.payment_hash)
        assert (await asyncio.wait_for(waiting, 5)).payment_hash == first.payment_hash
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.1)
        await setup.relays[1].stop()
        with pytest.raises(LightningUnavailable):
            await asyncio.wait_for(waiting, 5)  # the last relay gone: the stream ends, it does not hang


# -- notifications


async def test_a_notification_is_only_a_hint(tmp_path):
    async with nwc(tmp_path) as setup:
        backend = setup.open()
        lie = await backend.create_invoice(amount_msat=1_000, description="not paid")
        truth = await backend.create_invoice(amount_msat=2_000, description="paid")
        stream = backend.settlements(0)
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.3)
        await setup.wallet.notify(lie.payment_hash)  # says received; lookup_invoice says pending
        await setup.wallet.settle(truth.payment_hash)
        settlement = await asyncio.wait_for(waiting, 5)
        assert settlement.payment_hash == truth.payment_hash and settlement.amount_received_msat == 2_000
        assert settlement.settle_index == 0 and settlement.settled_at.tzinfo is not None
        assert ("lookup_invoice", {"payment_hash": lie.payment_hash}) in setup.wallet.requests
        await stream.aclose()


async def test_a_restarted_stream_starts_with_the_last_hours_payments(tmp_path):
    async with nwc(tmp_path) as setup:
        backend = setup.open()
        paid = []
        for number in range(REPLAY_PAGE + 2):  # more than a page of list_transactions
            created = await backend.create_invoice(amount_msat=1_000 + number, description=f"#{number}")
            await setup.wallet.settle(created.payment_hash)
            paid.append(created.payment_hash)
        await backend.create_invoice(amount_msat=5_000, description="unpaid")
        stream = backend.settlements(0)
        replayed = [await asyncio.wait_for(anext(stream), 5) for _ in paid]
        assert sorted(s.payment_hash for s in replayed) == sorted(paid)
        assert {s.amount_received_msat for s in replayed} == {1_000 + n for n in range(len(paid))}
        pages = [p for m, p in setup.wallet.requests if m == "list_transactions"]
        assert [p["offset"] for p in pages] == [0, REPLAY_PAGE] and pages[0]["type"] == "incoming"
        await stream.aclose()


async def test_a_wallet_without_notifications_says_so_at_once(tmp_path):
    async with nwc(tmp_path, notifications=False, methods=ALL_METHODS - {"notifications"}) as setup:
        with pytest.raises(LightningUnsupported, match="notifications"):
            await anext(setup.open().settlements(0))


# -- payments


async def test_a_payment_still_in_flight_is_unknown_then_pending(tmp_path):
    async with nwc(tmp_path) as setup:
        backend = setup.open(pay_timeout=0.5)
        invoice, preimage = foreign_invoice(6_000)
        setup.wallet.learn(preimage)
        setup.wallet.pay_outcome = "pending"
        result = await backend.pay_invoice(invoice, max_fee_msat=1_000)
        assert result.status is PaymentStatus.UNKNOWN and result.error
        looked = await backend.lookup_payment(result.payment_hash)
        assert looked.status is PaymentStatus.PENDING


async def test_a_relay_cut_after_the_request_left_is_unknown_at_once(tmp_path):
    async with nwc(tmp_path) as setup:
        backend = setup.open(pay_timeout=30)
        invoice, preimage = foreign_invoice(6_000)
        setup.wallet.learn(preimage)
        setup.wallet.pay_outcome = "drop"
        paying = asyncio.ensure_future(backend.pay_invoice(invoice, max_fee_msat=1_000))
        await _until(lambda: any(m == "pay_invoice" for m, _ in setup.wallet.requests))
        started = time.monotonic()
        await setup.relays[0].cut()
        result = await asyncio.wait_for(paying, 5)
        assert result.status is PaymentStatus.UNKNOWN and time.monotonic() - started < 5
        await setup.wallet.connected()
        looked = await backend.lookup_payment(result.payment_hash)
        assert looked.status is PaymentStatus.SETTLED and looked.preimage == preimage


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("PAYMENT_FAILED", PaymentStatus.FAILED),
        ("INSUFFICIENT_BALANCE", PaymentStatus.FAILED),
        ("INTERNAL", PaymentStatus.UNKNOWN),
        ("OTHER", PaymentStatus.UNKNOWN),
    ],
)
async def test_pay_errors_fail_only_when_nothing_was_paid(tmp_path, code, status):
    async with nwc(tmp_path) as setup:
        setup.wallet.mode = f"error:{code}"
        invoice, _ = foreign_invoice(6_000)
        result = await setup.open().pay_invoice(invoice)
        assert result.status is status and code in (result.error or "")


async def test_a_rate_limited_payment_is_refused_not_failed(tmp_path):
    async with nwc(tmp_path) as setup:
        setup.wallet.mode = "error:RATE_LIMITED"
        invoice, _ = foreign_invoice(6_000)
        with pytest.raises(LightningUnavailable):
            await setup.open().pay_invoice(invoice)


async def test_a_failed_payment_is_failed_when_looked_up(tmp_path):
    async with nwc(tmp_path) as setup:
        backend = setup.open()
        invoice, _ = foreign_invoice(6_000)
        setup.wallet.pay_outcome = "failed"
        result = await backend.pay_invoice(invoice)
        assert result.status is PaymentStatus.FAILED
        assert (await backend.lookup_payment(result.payment_hash)).status is PaymentStatus.FAILED
        mine = await backend.create_invoice(amount_msat=1_000, description="incoming")
        assert (await backend.lookup_payment(mine.payment_hash)).status is PaymentStatus.UNKNOWN


@pytest.mark.parametrize(
    ("amount", "given", "says"),
    [(6_000, 7_000, "differs"), (None, None, "needs amount_msat")],
)
async def test_amounts_are_checked_before_paying(tmp_path, amount, given, says):
    async with nwc(tmp_path) as setup:
        invoice, _ = foreign_invoice(amount) if amount else _amountless()
        with pytest.raises(LightningRejected, match=says):
            await setup.open().pay_invoice(invoice, amount_msat=given)
        assert setup.wallet.requests == []


async def test_a_request_too_large_for_an_event_is_refused_unsent(tmp_path):
    async with nwc(tmp_path) as setup:
        with pytest.raises(LightningRejected, match="Nostr event"):
            await setup.open().create_invoice(amount_msat=1_000, description="x" * 60_000)
        assert setup.wallet.requests == []


async def test_node_info_comes_from_get_info(tmp_path):
    async with nwc(tmp_path) as setup:
        info = await setup.open().node_info()
        assert info.pubkey == setup.wallet.node_key.public_key.format().hex()
        assert info.alias == "fake nwc wallet" and info.network == "regtest" and info.backend == "nwc"


async def test_an_expired_invoice_is_canceled(tmp_path):
    async with nwc(tmp_path) as setup:
        backend = setup.open()
        created = await backend.create_invoice(amount_msat=1_000, description="short", expiry_seconds=60)
        setup.wallet.invoices[created.payment_hash]["expires_at"] = int(time.time()) - 1
        assert (await backend.lookup_invoice(created.payment_hash)).status is InvoiceStatus.CANCELED


async def test_errors_never_show_the_secret(tmp_path):
    async with nwc(tmp_path) as setup:
        backend = setup.open()
        for relay in setup.relays:
            await relay.stop()
        errors: list[LightningError] = []
        for attempt in (
            lambda: backend.create_invoice(amount_msat=1_000, description="x"),
            lambda: backend.lookup_invoice("ab" * 32),
            lambda: backend.node_info(),
        ):
            with pytest.raises(LightningError) as caught:
                await attempt()
            errors.append(caught.value)
        for error in errors:
            assert setup.secret not in str(error) and setup.secret not in repr(error)
            assert error.backend == "nwc"


async def _until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        await asyncio.sleep(0.02)


def _amountless() -> tuple[str, str]:
    preimage = secrets.token_bytes(32)
    invoice = bolt11.encode(
        private_key=coincurve.PrivateKey(),
        currency="bcrt",
        payment_hash=hashlib.sha256(preimage).digest(),
        payment_secret=secrets.token_bytes(32),
        amount_msat=None,
        timestamp=int(time.time()),
        description="any amount",
    )
    return invoice, preimage.hex()
