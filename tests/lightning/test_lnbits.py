"""The LNbits backend: its connection URL, and a real LNbits 1.6.2 (FakeWallet) answering it.

The server is the one of tests/lightning/fakes/lnbits_server.py (started once per test process);
faults and cut connections come from the proxy between the backend and LNbits.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from boltgate.lightning import bolt11
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
from boltgate.lightning.lnbits import LNbitsBackend, settings_of
from boltgate.lightning.registry import BackendEnv, open_backend
from tests.lightning.contract.h_lnbits import NETWORK, url_of
from tests.lightning.contract.harness import foreign_invoice
from tests.lightning.fakes import lnbits_server, tls
from tests.lightning.fakes.faulty_proxy import FaultyProxy, Response

KEY = "0123456789abcdef0123456789abcdef"

# -- the connection URL (no server)


@pytest.mark.parametrize(
    ("url", "base", "ws"),
    [
        (f"lnbits://lnbits.example?key={KEY}", "https://lnbits.example:443", "wss://lnbits.example:443"),
        (f"lnbits://10.0.0.5?key={KEY}&tls=0", "http://10.0.0.5:5000", "ws://10.0.0.5:5000"),
        (f"lnbits://h:8443/lnbits/?key={KEY}", "https://h:8443/lnbits", "wss://h:8443/lnbits"),
        (f"lnbits://[::1]:5001?key={KEY.upper()}&tls=0", "http://[::1]:5001", "ws://[::1]:5001"),
    ],
)
def test_url_forms(url: str, base: str, ws: str):
    settings = settings_of(parse(url))
    assert settings.base_url == base
    assert settings.ws_url == f"{ws}/api/v1/ws/{KEY}"
    assert settings.key == KEY
    assert KEY not in repr(settings)


def test_url_options():
    settings = settings_of(parse(f"lnbits://h?key={KEY}&timeout=3&pay_timeout=120"))
    assert (settings.timeout, settings.pay_timeout) == (3.0, 120.0)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("lnbits://host", "needs the wallet's key"),
        ("lnbits://host?key=", "needs the wallet's key"),
        (f"lnbits://host?key={KEY[:-1]}", "32 hex"),
        (f"lnbits://host?key={KEY[:-1]}g", "32 hex"),
        (f"lnbits://host?key={KEY}00", "32 hex"),
        (f"lnbits://?key={KEY}", "needs a host"),
        (f"lnbits://host:0?key={KEY}", "port 0"),
        (f"lnbits://host?key={KEY}&apikey=x", "unknown parameter 'apikey'"),
        (f"lnbits://{KEY}@host", "not before the host"),
        (f"lnbits://host?key={KEY}&tls=0&cert=/etc/ssl/x.pem", "cert="),
        (f"lnbits://host?key={KEY}&pay_timeout=soon", "pay_timeout"),
        (f"lnbits://host?key={KEY}&tls=maybe", "tls must be"),
    ],
)
def test_malformed_urls_say_what_is_wrong_without_the_key(url: str, says: str):
    with pytest.raises(ConnectionUrlError) as caught:
        open_backend(url, BackendEnv(data_dir=Path("/nonexistent")))
    message = str(caught.value)
    assert message.startswith("lnbits:") and says in message
    assert KEY not in message and KEY[:-1] not in message


async def test_the_key_never_shows():
    backend = open_backend(f"lnbits://h?key={KEY}", BackendEnv(data_dir=Path("/nonexistent")))
    assert isinstance(backend, LNbitsBackend)
    assert KEY not in repr(backend) and "key=***" in repr(backend)
    await backend.close()


async def test_amounts_are_whole_sats_before_anything_is_sent():
    backend = open_backend(f"lnbits://127.0.0.1:9?key={KEY}&tls=0", BackendEnv(data_dir=Path("/x")))
    try:
        for amount in (1_500, 999, 0, -1_000):
            with pytest.raises(LightningUnsupported) as caught:
                await backend.create_invoice(amount_msat=amount, description="x")
            assert caught.value.backend == "lnbits"
    finally:
        await backend.close()


# -- against LNbits


@pytest.fixture
async def lnbits() -> lnbits_server.LNbitsServer:
    return await lnbits_server.shared()


@pytest.fixture
async def merchant(lnbits: lnbits_server.LNbitsServer) -> lnbits_server.Wallet:
    return await lnbits.new_wallet("merchant", fund_sats=50_000)


@pytest.fixture
async def proxy(lnbits: lnbits_server.LNbitsServer) -> AsyncIterator[FaultyProxy]:
    async with FaultyProxy(lnbits.port) as made:
        yield made


def _open(port: int, key: str, tmp_path: Path, **params: str) -> LNbitsBackend:
    backend = open_backend(url_of(port, key, **params), BackendEnv(data_dir=tmp_path, network=NETWORK))
    assert isinstance(backend, LNbitsBackend)
    return backend


@pytest.fixture
async def admin(
    proxy: FaultyProxy, merchant: lnbits_server.Wallet, tmp_path: Path
) -> AsyncIterator[LNbitsBackend]:
    backend = _open(proxy.port, merchant.adminkey, tmp_path)
    yield backend
    await backend.close()


@pytest.fixture
async def receive_only(
    proxy: FaultyProxy, merchant: lnbits_server.Wallet, tmp_path: Path
) -> AsyncIterator[LNbitsBackend]:
    backend = _open(proxy.port, merchant.inkey, tmp_path)
    yield backend
    await backend.close()


async def test_lnbits_answers_are_read_as_they_are(
    receive_only: LNbitsBackend, lnbits: lnbits_server.LNbitsServer, merchant: lnbits_server.Wallet
):
    created = await receive_only.create_invoice(amount_msat=21_000, description="coffee", expiry_seconds=900)
    decoded = bolt11.decode(created.payment_request)
    assert decoded.currency == "bc" and decoded.amount_msat == 21_000 and decoded.description == "coffee"
    assert created.backend_invoice_id == created.payment_hash  # FakeWallet's checking id is the hash
    assert abs(created.expires_at.timestamp() - (decoded.timestamp + 900)) < 1
    assert (await receive_only.lookup_invoice(created.payment_hash)).status is InvoiceStatus.OPEN
    await lnbits.settle(merchant, created.payment_hash)
    state = await receive_only.lookup_invoice(created.payment_hash.upper())
    assert state.status is InvoiceStatus.SETTLED and state.amount_received_msat == 21_000
    info = await receive_only.node_info()
    assert info.alias == "LNbits wallet merchant" and info.network == NETWORK and info.pubkey == ""


async def test_descriptions_longer_than_an_invoice_holds_are_committed_to_by_hash(
    receive_only: LNbitsBackend,
):
    long = "é" * 400  # 800 bytes: more than a BOLT11 description can carry
    created = await receive_only.create_invoice(amount_msat=2_000, description=long)
    decoded = bolt11.decode(created.payment_request)
    assert decoded.description is None and decoded.description_hash == hashlib.sha256(long.encode()).digest()
    plain = await receive_only.create_invoice(amount_msat=2_000, description="x" * 639)
    assert bolt11.decode(plain.payment_request).description == "x" * 639


async def test_an_expired_invoice_is_canceled(receive_only: LNbitsBackend):
    # 3 s: BOLT11 timestamps are whole seconds, and a loaded machine may take a second to answer
    created = await receive_only.create_invoice(amount_msat=1_000, description="late", expiry_seconds=3)
    await asyncio.sleep(3.2)
    assert (await receive_only.lookup_invoice(created.payment_hash)).status is InvoiceStatus.CANCELED


async def test_the_invoice_key_cannot_pay(
    receive_only: LNbitsBackend, lnbits: lnbits_server.LNbitsServer, proxy: FaultyProxy
):
    assert lnbits.customer is not None
    invoice = await lnbits.create_invoice(lnbits.customer, 3)
    with pytest.raises(LightningUnsupported) as caught:
        await receive_only.pay_invoice(invoice["bolt11"])
    assert "admin key" in str(caught.value)
    assert (await receive_only.lookup_payment(invoice["payment_hash"])).status is PaymentStatus.UNKNOWN


async def test_a_wrong_key_is_rejected_everywhere(
    proxy: FaultyProxy, lnbits: lnbits_server.LNbitsServer, tmp_path
):
    assert lnbits.customer is not None
    paid = await lnbits.create_invoice(lnbits.customer, 1)
    wrong = secrets.token_hex(16)
    backend = _open(proxy.port, wrong, tmp_path)
    try:
        calls = [
            backend.create_invoice(amount_msat=1_000, description="x"),
            backend.node_info(),
            # LNbits answers a look-up without a valid key too, without the payment's details
            backend.lookup_invoice(paid["payment_hash"]),
            backend.lookup_payment(paid["payment_hash"]),
            backend.settlements().__anext__(),
            backend.pay_invoice(paid["bolt11"]),
        ]
        for call in calls:
            with pytest.raises(LightningRejected) as caught:
                await call
            assert wrong not in str(caught.value)
    finally:
        await backend.close()


async def test_paying_an_invoice_of_the_same_lnbits_settles_with_its_preimage(
    admin: LNbitsBackend, lnbits: lnbits_server.LNbitsServer
):
    assert lnbits.customer is not None
    invoice = await lnbits.create_invoice(lnbits.customer, 7)
    result = await admin.pay_invoice(invoice["bolt11"], max_fee_msat=0)
    assert result.status is PaymentStatus.SETTLED and result.fee_msat == 0
    assert hashlib.sha256(bytes.fromhex(result.preimage or "")).hexdigest() == invoice["payment_hash"]
    looked = await admin.lookup_payment(invoice["payment_hash"])
    assert looked.status is PaymentStatus.SETTLED and looked.preimage == result.preimage
    # the wallet has a payment with that hash, not an invoice
    assert (await admin.lookup_invoice(invoice["payment_hash"])).status is InvoiceStatus.UNKNOWN
    again = await admin.pay_invoice(invoice["bolt11"])
    assert again.status is PaymentStatus.FAILED and "already paid" in (again.error or "")


async def test_an_invoice_lnbits_cannot_route_fails_with_its_reason(admin: LNbitsBackend):
    invoice, _preimage = foreign_invoice(5_000, network=NETWORK)
    result = await admin.pay_invoice(invoice)
    assert result.status is PaymentStatus.FAILED and "Only internal invoices" in (result.error or "")
    looked = await admin.lookup_payment(bolt11.decode(invoice).payment_hash.hex())
    assert looked.status is PaymentStatus.FAILED


async def test_a_cut_answer_is_unknown_and_the_lookup_tells(
    admin: LNbitsBackend, lnbits: lnbits_server.LNbitsServer, proxy: FaultyProxy
):
    assert lnbits.customer is not None
    invoice = await lnbits.create_invoice(lnbits.customer, 4)
    proxy.drop_next(lnbits_server.is_payment_request)
    result = await admin.pay_invoice(invoice["bolt11"])
    assert result.status is PaymentStatus.UNKNOWN  # LNbits paid; the answer never came
    looked = await admin.lookup_payment(invoice["payment_hash"])
    assert looked.status is PaymentStatus.SETTLED
    assert hashlib.sha256(bytes.fromhex(looked.preimage or "")).hexdigest() == invoice["payment_hash"]


async def test_lnbits_pending_answers_are_pending(admin: LNbitsBackend, proxy: FaultyProxy):
    invoice, _ = foreign_invoice(5_000, network=NETWORK)
    proxy.answer_next(lnbits_server.is_payment_request, lnbits_server.in_flight)
    assert (await admin.pay_invoice(invoice)).status is PaymentStatus.PENDING
    # LNbits' answer to paying again an invoice whose payment is still in flight
    still = Response.json_of(520, {"detail": "Payment is still pending.", "status": "pending"})
    proxy.answer_next(lnbits_server.is_payment_request, still)
    assert (await admin.pay_invoice(invoice)).status is PaymentStatus.PENDING
    proxy.answer_next(
        lnbits_server.is_payment_request, Response.json_of(500, {"detail": "Unexpected error!"})
    )
    assert (await admin.pay_invoice(invoice)).status is PaymentStatus.UNKNOWN


async def test_what_lnbits_cannot_pay_is_refused_before_sending(admin: LNbitsBackend, proxy: FaultyProxy):
    invoice, _ = foreign_invoice(5_000, network=NETWORK)
    with pytest.raises(LightningUnsupported):
        await admin.pay_invoice(invoice, amount_msat=6_000)
    with pytest.raises(LightningRejected):
        await admin.pay_invoice("lnbc1notaninvoice")
    assert proxy.forwarded == []


async def _next(stream: AsyncIterator[Settlement], payment_hash: str, wait: float = 10) -> Settlement:
    async def first() -> Settlement:
        async for settlement in stream:
            if settlement.payment_hash == payment_hash:
                return settlement
        raise AssertionError("the stream ended")

    return await asyncio.wait_for(first(), wait)


async def test_a_forged_push_is_not_a_settlement(
    receive_only: LNbitsBackend, lnbits: lnbits_server.LNbitsServer, merchant: lnbits_server.Wallet
):
    marker, forged, real = [
        await receive_only.create_invoice(amount_msat=amount, description=name, expiry_seconds=600)
        for name, amount in (("marker", 1_000), ("forged", 9_000), ("real", 8_000))
    ]
    stream = receive_only.settlements()
    seen: list[Settlement] = []

    async def collect() -> None:
        async for settlement in stream:
            seen.append(settlement)
            if settlement.payment_hash == real.payment_hash:
                return

    task = asyncio.ensure_future(collect())
    await lnbits.settle(merchant, marker.payment_hash)
    deadline = time.monotonic() + 10
    while marker.payment_hash not in {s.payment_hash for s in seen} and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # once the marker is seen, the stream is subscribed
    # anyone who knows the key can post to its channel: LNbits' shape, claiming a payment
    fake = {
        "wallet_balance": 9,
        "payment": {"payment_hash": forged.payment_hash, "amount": 9_000, "status": "success"},
    }
    await lnbits.post_to_channel(merchant.inkey, orjson.dumps(fake).decode())
    await lnbits.post_to_channel(merchant.inkey, "not json")
    await lnbits.settle(merchant, real.payment_hash)
    await asyncio.wait_for(task, 10)
    assert forged.payment_hash not in {s.payment_hash for s in seen}
    assert seen[-1].amount_received_msat == 8_000 and seen[-1].settle_index == 0
    assert (await receive_only.lookup_invoice(forged.payment_hash)).status is InvoiceStatus.OPEN
    await stream.aclose()


async def test_a_new_stream_replays_the_latest_settlements(
    receive_only: LNbitsBackend, lnbits: lnbits_server.LNbitsServer, merchant: lnbits_server.Wallet
):
    created = await receive_only.create_invoice(amount_msat=6_000, description="earlier", expiry_seconds=600)
    await lnbits.settle(merchant, created.payment_hash)
    started = time.monotonic()
    settlement = await _next(receive_only.settlements(), created.payment_hash, wait=5)
    assert settlement.amount_received_msat == 6_000 and time.monotonic() - started < 5


async def test_tls_is_pinned_to_the_configured_certificate(
    lnbits: lnbits_server.LNbitsServer, merchant: lnbits_server.Wallet, tmp_path: Path
):
    cert, key = tls.make_cert(tmp_path)
    other, _ = tls.make_cert(tmp_path)
    async with FaultyProxy(lnbits.port, tls=tls.server_context(cert, key)) as proxy:
        env = BackendEnv(data_dir=tmp_path, network=NETWORK)
        pinned = open_backend(f"lnbits://127.0.0.1:{proxy.port}?key={merchant.inkey}&cert={cert}", env)
        wrong = open_backend(f"lnbits://127.0.0.1:{proxy.port}?key={merchant.inkey}&cert={other}", env)
        try:
            created = await pinned.create_invoice(amount_msat=3_000, description="tls", expiry_seconds=600)
            stream = pinned.settlements()
            waiting = asyncio.ensure_future(_next(stream, created.payment_hash))
            await asyncio.sleep(0.3)
            await lnbits.settle(merchant, created.payment_hash)
            assert (await waiting).amount_received_msat == 3_000  # pushed over wss, pinned too
            await stream.aclose()
            for call in (wrong.create_invoice(amount_msat=1_000, description="x"), wrong.node_info()):
                with pytest.raises(LightningRejected) as caught:
                    await call
                assert "certificate" in str(caught.value) and caught.value.backend == "lnbits"
        finally:
            await pinned.close()
            await wrong.close()


async def test_a_5xx_websocket_a_garbage_list_and_a_404_page_are_errors(
    receive_only: LNbitsBackend, proxy: FaultyProxy, merchant: lnbits_server.Wallet
):
    await proxy.set("error5xx")
    with pytest.raises(LightningUnavailable):
        await receive_only.settlements().__anext__()
    await proxy.set("ok")
    proxy.answer_next(
        lambda r: r.path == "/api/v1/payments" and r.method == "GET", Response.json_of(200, {"x": 1})
    )
    with pytest.raises(LightningProtocolError):
        await receive_only.settlements().__anext__()
    # a 404 page of a proxy in front (a wrong path prefix) is not "no such invoice"
    page = Response(404, [("content-type", "text/html")], b"<html>Not Found</html>")
    proxy.answer_next(lambda r: r.method == "GET", page)
    with pytest.raises(LightningRejected):
        await receive_only.lookup_invoice("ab" * 32)
    assert (await receive_only.lookup_invoice("ab" * 32)).status is InvoiceStatus.UNKNOWN
