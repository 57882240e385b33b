"""phoenixd specifics: its URL, the two passwords, sats only, 128-character descriptions, the
websocket (drops, silence, replay) and payments, against the fake phoenixd on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from boltgate.lightning import bolt11, phoenixd
from boltgate.lightning.base import (
    InvoiceStatus,
    LightningProtocolError,
    LightningRejected,
    LightningUnavailable,
    LightningUnsupported,
    PaymentStatus,
    Settlement,
)
from boltgate.lightning.connection import ConnectionUrlError, parse
from boltgate.lightning.registry import BackendEnv, open_backend
from tests.lightning.contract.harness import foreign_invoice
from tests.lightning.fakes.phoenixd import FakePhoenixd
from tests.lightning.fakes.tls import make_cert, server_context


@pytest.fixture
async def fake() -> AsyncIterator[FakePhoenixd]:
    node = FakePhoenixd()
    await node.start()
    yield node
    await node.stop()


def backend_of(url: str, tmp_path: Path, network: str = "regtest") -> phoenixd.PhoenixdBackend:
    backend = open_backend(url, BackendEnv(data_dir=tmp_path, network=network))
    assert isinstance(backend, phoenixd.PhoenixdBackend)
    return backend


def url_of(fake: FakePhoenixd, password: str | None = None, query: str = "timeout=2&pay_timeout=1") -> str:
    return f"phoenixd://:{password or fake.password}@{fake.url_host}?{query}"


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


async def collect(backend: phoenixd.PhoenixdBackend, into: list[Settlement]) -> None:
    async for settlement in backend.settlements(0):
        into.append(settlement)


# -- the connection URL


@pytest.mark.parametrize(
    ("url", "base", "ws"),
    [
        ("phoenixd://:pw@node.lan", "http://node.lan:9740", "ws://node.lan:9740/websocket"),
        ("phoenixd://:pw@node.lan:9741?tls=0", "http://node.lan:9741", "ws://node.lan:9741/websocket"),
        ("phoenixd://:pw@node.lan?tls=1", "https://node.lan:9740", "wss://node.lan:9740/websocket"),
        ("phoenixd://:pw@[::1]:9740", "http://[::1]:9740", "ws://[::1]:9740/websocket"),
        ("phoenixd://:pw@proxy.example/phoenixd/?tls=1", "https://proxy.example:9740/phoenixd", None),
        ("phoenixd://node.lan?password=pw", "http://node.lan:9740", None),
    ],
)
def test_url_forms(url: str, base: str, ws: str | None):
    _connection, settings = phoenixd.settings_of(parse(url))
    assert settings.base_url == base
    assert ws is None or settings.ws_url == ws
    assert settings.password == "pw"
    assert "pw" not in repr(settings)


async def test_the_password_may_be_a_url_password_or_a_parameter(fake, tmp_path):
    for url in (
        url_of(fake),
        f"phoenixd://anyone:{fake.password}@{fake.url_host}",  # the user name is not used
        f"phoenixd://{fake.url_host}?password={fake.password}",
    ):
        backend = backend_of(url, tmp_path)
        created = await backend.create_invoice(amount_msat=1_000, description="x")
        assert (await backend.lookup_invoice(created.payment_hash)).status is InvoiceStatus.OPEN
        assert fake.password not in repr(backend)
        await backend.close()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("phoenixd://127.0.0.1:9740", "http-password"),
        ("phoenixd://:@127.0.0.1:9740", "http-password"),
        ("phoenixd://user@127.0.0.1:9740", "http-password"),
        ("phoenixd://:s3cretpw@127.0.0.1:port", "malformed"),
        ("phoenixd://:s3cretpw@127.0.0.1:70000", "malformed"),
        ("phoenixd://:s3cretpw@127.0.0.1:0", "port"),
        ("phoenixd://:s3cretpw@/", "host"),
        ("phoenixd://:s3cretpw@node.lan?tls=maybe", "tls"),
        ("phoenixd://:s3cretpw@node.lan?cert=/etc/ssl/x.pem", "tls=1"),
        ("phoenixd://:s3cretpw@node.lan?pay_timeout=0", "pay_timeout"),
        ("phoenixd://:s3cretpw@node.lan?pay_timeout=soon", "pay_timeout"),
        ("phoenixd://:s3cretpw@node.lan?timeout=soon", "timeout"),
    ],
)
def test_malformed_urls_say_what_is_wrong_without_the_password(url: str, says: str, tmp_path):
    with pytest.raises(ConnectionUrlError) as caught:
        open_backend(url, BackendEnv(data_dir=tmp_path))
    assert "phoenixd" in str(caught.value) and says in str(caught.value)
    assert "s3cretpw" not in str(caught.value)


async def test_tls_with_a_pinned_certificate_and_a_mismatch(tmp_path):
    cert, key = make_cert(tmp_path)
    other, _ = make_cert(tmp_path)
    node = FakePhoenixd(ssl_context=server_context(cert, key))
    await node.start()
    try:
        good = backend_of(url_of(node, query=f"tls=1&cert={cert}&timeout=2"), tmp_path)
        created = await good.create_invoice(amount_msat=2_000, description="over tls")
        received: list[Settlement] = []
        task = asyncio.ensure_future(collect(good, received))
        await until(lambda: node.websockets == 1)
        await node.settle(created.payment_hash)
        await until(lambda: len(received) == 1)
        task.cancel()
        assert received[0].payment_hash == created.payment_hash
        await good.close()

        wrong = backend_of(url_of(node, query=f"tls=1&cert={other}&timeout=2"), tmp_path)
        with pytest.raises(LightningRejected, match=r"phoenixd: .*certificate"):
            await wrong.create_invoice(amount_msat=2_000, description="x")
        with pytest.raises(LightningRejected, match=r"phoenixd: .*certificate"):
            await anext(aiter(wrong.settlements()))
        await wrong.close()
    finally:
        await node.stop()


# -- the two passwords


async def test_the_limited_password_receives_but_cannot_pay(fake, tmp_path):
    limited = backend_of(url_of(fake, fake.limited_password), tmp_path)
    created = await limited.create_invoice(amount_msat=5_000, description="limited")
    await fake.settle(created.payment_hash)
    assert (await limited.lookup_invoice(created.payment_hash)).status is InvoiceStatus.SETTLED
    assert (await limited.node_info()).pubkey == fake.node_id
    invoice, preimage = foreign_invoice(7_000)
    fake.learn(preimage)
    with pytest.raises(LightningUnsupported, match="limited-access password cannot pay") as caught:
        await limited.pay_invoice(invoice)
    assert fake.limited_password not in str(caught.value)
    assert fake.outgoing == {}
    await limited.close()

    wrong = backend_of(url_of(fake, "not-the-password"), tmp_path)
    with pytest.raises(LightningRejected) as refused:
        await wrong.pay_invoice(invoice)
    assert not isinstance(refused.value, LightningUnsupported)
    await wrong.close()


# -- creating invoices


async def test_the_request_is_form_encoded_in_sats(fake, tmp_path):
    backend = backend_of(url_of(fake), tmp_path)
    created = await backend.create_invoice(amount_msat=21_000, description="coffee", expiry_seconds=900)
    method, path, content_type, form = fake.requests[-1]
    assert (method, path, content_type) == ("POST", "/createinvoice", "application/x-www-form-urlencoded")
    assert form == {
        "amountSat": "21",
        "expirySeconds": "900",
        "externalId": "boltgate",
        "description": "coffee",
    }
    assert created.backend_invoice_id == created.payment_hash
    assert fake.incoming[created.payment_hash].external_id == "boltgate"
    await backend.close()


@pytest.mark.parametrize(
    ("description", "as_hash"),
    [("d" * 128, False), ("d" * 129, True), ("é" * 128, False), ("😀" * 65, True)],  # 😀 is 2 UTF-16 units
)
async def test_descriptions_over_128_characters_go_as_their_hash(fake, tmp_path, description, as_hash):
    backend = backend_of(url_of(fake), tmp_path)
    created = await backend.create_invoice(amount_msat=3_000, description=description)
    form = fake.requests[-1][3]
    decoded = bolt11.decode(created.payment_request)
    digest = hashlib.sha256(description.encode()).digest()
    if as_hash:
        assert "description" not in form and form["descriptionHash"] == digest.hex()
        assert decoded.description_hash == digest
    else:
        assert "descriptionHash" not in form and decoded.description == description
    await backend.close()


@pytest.mark.parametrize("amount_msat", [1_500, 999, 0, -1_000])
async def test_amounts_that_are_not_whole_sats_are_refused(fake, tmp_path, amount_msat):
    backend = backend_of(url_of(fake), tmp_path)
    with pytest.raises(LightningUnsupported, match="sats"):
        await backend.create_invoice(amount_msat=amount_msat, description="x")
    invoice, _preimage = foreign_invoice(7_000)
    with pytest.raises(LightningUnsupported, match="sats"):
        await backend.pay_invoice(invoice, amount_msat=amount_msat)
    assert fake.requests == [] and fake.outgoing == {}
    await backend.close()


async def test_an_invoice_for_another_network_is_refused(fake, tmp_path):
    backend = backend_of(url_of(fake), tmp_path, network="mainnet")
    with pytest.raises(LightningProtocolError, match="another network"):
        await backend.create_invoice(amount_msat=1_000, description="x")
    await backend.close()


# -- looking invoices up


async def test_unknown_and_malformed_hashes_are_unknown(fake, tmp_path):
    backend = backend_of(url_of(fake), tmp_path)
    assert (await backend.lookup_invoice("ab" * 32)).status is InvoiceStatus.UNKNOWN
    assert fake.requests[-1][1] == "/payments/incoming/" + "ab" * 32
    count = len(fake.requests)
    assert (await backend.lookup_invoice("not-a-hash")).status is InvoiceStatus.UNKNOWN
    assert (await backend.lookup_payment("zz" * 32)).status is PaymentStatus.UNKNOWN
    assert len(fake.requests) == count  # nothing phoenixd could know is asked
    await backend.close()


async def test_an_expired_invoice_is_canceled(fake, tmp_path):
    backend = backend_of(url_of(fake), tmp_path)
    created = await backend.create_invoice(amount_msat=1_000, description="x", expiry_seconds=60)
    fake.incoming[created.payment_hash].created_at -= 61_000
    assert (await backend.lookup_invoice(created.payment_hash)).status is InvoiceStatus.CANCELED
    await backend.close()


@pytest.mark.parametrize("fee_msat", [2_500_000, 500, 0])
async def test_liquidity_fees_are_part_of_what_the_payer_paid(fake, tmp_path, fee_msat):
    """phoenixd reports receivedSat after its liquidity fees (and truncated to the sat)."""
    backend = backend_of(url_of(fake), tmp_path)
    created = await backend.create_invoice(amount_msat=21_000_000, description="with a channel")
    received: list[Settlement] = []
    task = asyncio.ensure_future(collect(backend, received))
    await until(lambda: fake.websockets == 1)
    await fake.settle(created.payment_hash, fee_msat=fee_msat)
    state = await backend.lookup_invoice(created.payment_hash)
    assert state.status is InvoiceStatus.SETTLED and state.amount_received_msat == 21_000_000
    await until(lambda: len(received) == 1)
    task.cancel()
    assert received[0].amount_received_msat == 21_000_000 and received[0].settle_index == 0
    await backend.close()


# -- the websocket


async def test_a_dropped_websocket_raises_and_a_new_subscription_works(fake, tmp_path):
    backend = backend_of(url_of(fake), tmp_path)
    first: list[Settlement] = []
    task = asyncio.ensure_future(collect(backend, first))
    await until(lambda: fake.websockets == 1)
    await fake.stop()
    with pytest.raises(LightningUnavailable, match="phoenixd") as caught:
        await asyncio.wait_for(task, 5)
    assert fake.password not in str(caught.value)
    with pytest.raises(LightningUnavailable):  # while phoenixd is down, subscribing fails at once
        await asyncio.wait_for(anext(aiter(backend.settlements())), 5)
    await fake.start()
    created = await backend.create_invoice(amount_msat=4_000, description="after the restart")
    second: list[Settlement] = []
    task = asyncio.ensure_future(collect(backend, second))
    await until(lambda: fake.websockets == 1)
    await fake.settle(created.payment_hash)
    await until(lambda: len(second) == 1)
    task.cancel()
    assert second[0].payment_hash == created.payment_hash and second[0].amount_received_msat == 4_000
    await backend.close()


async def test_a_silent_websocket_is_noticed(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(phoenixd, "PING_INTERVAL", 0.2)
    fake.answer_pings = False
    backend = backend_of(url_of(fake, query="timeout=0.5"), tmp_path)
    task = asyncio.ensure_future(collect(backend, []))
    with pytest.raises(LightningUnavailable, match="dropped"):
        await asyncio.wait_for(task, 5)
    await backend.close()


async def test_a_subscription_replays_recent_settlements_once(fake, tmp_path):
    backend = backend_of(url_of(fake), tmp_path)
    early = await backend.create_invoice(amount_msat=1_000, description="before subscribing")
    await fake.settle(early.payment_hash)
    foreign = fake.incoming[(await backend.create_invoice(amount_msat=1_000, description="x")).payment_hash]
    foreign.external_id = None  # an invoice someone else made on this phoenixd is not replayed
    await fake.settle(foreign.payment_hash)
    received: list[Settlement] = []
    task = asyncio.ensure_future(collect(backend, received))
    await until(lambda: len(received) == 1)
    assert received[0].payment_hash == early.payment_hash
    await fake.push(
        {"type": "payment_received", "timestamp": 0, "amountSat": 1, "paymentHash": early.payment_hash}
    )
    await fake.push({"type": "payment_sent", "timestamp": 0, "paymentHash": "cd" * 32})
    later = await backend.create_invoice(amount_msat=2_000, description="after")
    await fake.settle(later.payment_hash)
    await until(lambda: len(received) == 2)
    task.cancel()
    # the event for the replayed payment is not a second settlement
    assert [s.payment_hash for s in received] == [early.payment_hash, later.payment_hash]
    await backend.close()


async def test_a_garbled_websocket_message_is_a_protocol_error(fake, tmp_path):
    backend = backend_of(url_of(fake), tmp_path)
    task = asyncio.ensure_future(collect(backend, []))
    await until(lambda: fake.websockets == 1)
    await fake.push_raw("{not json")
    with pytest.raises(LightningProtocolError):
        await asyncio.wait_for(task, 5)
    await backend.close()


async def test_wrong_credentials_are_rejected_on_the_websocket(fake, tmp_path):
    backend = backend_of(url_of(fake, "not-the-password"), tmp_path)
    with pytest.raises(LightningRejected, match="credentials"):
        await anext(aiter(backend.settlements()))
    await backend.close()


# -- paying


async def test_a_payment_settles_with_its_preimage_and_fee(fake, tmp_path):
    backend = backend_of(url_of(fake), tmp_path)
    invoice, preimage = foreign_invoice(7_000)
    fake.learn(preimage)
    result = await backend.pay_invoice(invoice)
    assert result.status is PaymentStatus.SETTLED and result.preimage == preimage
    assert result.fee_msat == 1_000
    assert fake.requests[-1][3] == {"invoice": invoice}
    looked = await backend.lookup_payment(result.payment_hash)
    assert looked.status is PaymentStatus.SETTLED and looked.preimage == preimage and looked.fee_msat == 1_000
    await backend.close()


async def test_an_amount_is_sent_in_sats(fake, tmp_path):
    backend = backend_of(url_of(fake), tmp_path)
    invoice, preimage = foreign_invoice(7_000)
    fake.learn(preimage)
    result = await backend.pay_invoice(invoice, amount_msat=8_000)
    assert result.status is PaymentStatus.SETTLED
    assert fake.requests[-1][3] == {"invoice": invoice, "amountSat": "8"}
    await backend.close()


async def test_a_cut_answer_is_unknown_then_the_lookup_tells(fake, tmp_path):
    backend = backend_of(url_of(fake), tmp_path)
    invoice, preimage = foreign_invoice(7_000)
    fake.learn(preimage)
    await fake.set_pay_outcome("drop")
    result = await backend.pay_invoice(invoice)
    assert result.status is PaymentStatus.UNKNOWN and result.preimage is None
    assert len(fake.outgoing) == 1  # paid once, never again
    looked = await backend.lookup_payment(result.payment_hash)
    assert looked.status is PaymentStatus.SETTLED and looked.preimage == preimage
    await backend.close()


async def test_a_payment_still_in_flight_is_pending(fake, tmp_path):
    backend = backend_of(url_of(fake), tmp_path)
    invoice, _preimage = foreign_invoice(7_000)
    await fake.set_pay_outcome("pending")
    result = await backend.pay_invoice(invoice)  # pay_timeout=1, then phoenixd is asked
    assert result.status is PaymentStatus.PENDING
    assert (await backend.lookup_payment(result.payment_hash)).status is PaymentStatus.PENDING
    assert len(fake.outgoing) == 1
    await backend.close()


async def test_a_failure_named_by_phoenixd_is_failed(fake, tmp_path):
    backend = backend_of(url_of(fake), tmp_path)
    invoice, _preimage = foreign_invoice(7_000)
    await fake.set_pay_outcome("failed")
    result = await backend.pay_invoice(invoice)
    assert result.status is PaymentStatus.FAILED and result.error == "no route to recipient"
    assert (await backend.lookup_payment(result.payment_hash)).status is PaymentStatus.FAILED
    await backend.close()


async def test_an_error_after_sending_is_unknown_never_failed(fake, tmp_path):
    backend = backend_of(url_of(fake), tmp_path)
    invoice, _preimage = foreign_invoice(7_000)
    await fake.set_fault("error5xx")
    result = await backend.pay_invoice(invoice)
    assert result.status is PaymentStatus.UNKNOWN
    await fake.set_fault("refused")
    with pytest.raises(LightningUnavailable):  # refused: the request never left, so it may be retried
        await backend.pay_invoice(invoice)
    await fake.set_fault("ok")
    await backend.close()


async def test_invoices_that_cannot_be_paid_are_refused_before_sending(fake, tmp_path):
    backend = backend_of(url_of(fake), tmp_path)
    with pytest.raises(LightningRejected, match="invalid invoice"):
        await backend.pay_invoice("lnbcrt1notaninvoice")
    amountless = bolt11.encode(
        private_key=bytes(range(1, 33)),
        currency="bcrt",
        payment_hash=b"\x01" * 32,
        payment_secret=b"\x02" * 32,
        amount_msat=None,
        timestamp=int(time.time()),
        description="any amount",
    )
    with pytest.raises(LightningRejected, match="no amount"):
        await backend.pay_invoice(amountless)
    assert fake.requests == []
    await backend.close()


# -- the node


@pytest.mark.parametrize(
    ("chain", "network"),
    [("mainnet", "mainnet"), ("testnet3", "testnet"), ("testnet4", "testnet"), ("signet", "signet")],
)
async def test_node_info_names_the_network(tmp_path, chain, network):
    node = FakePhoenixd(chain=chain)
    await node.start()
    backend = backend_of(url_of(node), tmp_path, network=network)
    info = await backend.node_info()
    assert (info.network, info.pubkey, info.backend) == (network, node.node_id, "phoenixd")
    assert info.alias.startswith("phoenixd")
    await backend.close()
    await node.stop()
