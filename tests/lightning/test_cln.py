"""Core Lightning specifics: connection URLs, the unix socket client, runes, TLS pinning,
``waitanyinvoice`` resumption and ``pay``'s error codes, against tests/lightning/fakes/cln.py."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from boltgate.lightning import bolt11, cln
from boltgate.lightning.base import (
    InvoiceStatus,
    LightningProtocolError,
    LightningRejected,
    LightningUnavailable,
    LightningUnsupported,
    PaymentStatus,
)
from boltgate.lightning.connection import ConnectionUrlError
from boltgate.lightning.registry import BackendEnv, open_backend
from tests.lightning.contract.harness import foreign_invoice
from tests.lightning.fakes.cln import FakeCln, RpcError
from tests.lightning.fakes.tls import der_of, make_cert

RUNE = "tU-RLjMiDpY2U0o_hahu3Q2CiK0WsA1dNHvz6sA0Zz49MA=="


@pytest.fixture
async def fake() -> AsyncIterator[FakeCln]:
    directory = Path(tempfile.mkdtemp(dir="/tmp", prefix="cln-"))
    node = FakeCln(directory)
    await node.start()
    try:
        yield node
    finally:
        await node.stop()
        shutil.rmtree(directory, ignore_errors=True)


def env(tmp_path: Path, network: str = "regtest") -> BackendEnv:
    return BackendEnv(data_dir=tmp_path, network=network)


def rpc_backend(fake: FakeCln, tmp_path: Path) -> Any:
    return open_backend(f"cln-rpc://{fake.socket_path}?timeout=2", env(tmp_path))


def rest_url(fake: FakeCln, rune: str | None = None) -> str:
    return f"clnrest://127.0.0.1:{fake.port}?rune={rune or fake.rune}&cert={fake.cert_path}&timeout=2"


# -- connection URLs


def test_url_forms(tmp_path: Path):
    unix = open_backend("cln-rpc:///var/lib/cln/regtest/lightning-rpc", env(tmp_path))
    assert isinstance(unix, cln.ClnBackend) and unix.name == "cln-rpc" and unix.resumable
    rest = open_backend(f"clnrest://node.example?rune={RUNE}", env(tmp_path))
    assert isinstance(rest, cln.ClnBackend) and rest.name == "clnrest"
    assert "https://node.example:3010" in repr(rest._rpc)  # CLNRest's usual port, https by default
    plain = open_backend(f"clnrest://10.0.0.2:3011?rune={RUNE}&tls=0", env(tmp_path))
    assert "http://10.0.0.2:3011" in repr(plain._rpc)
    for backend in (rest, plain):
        assert RUNE not in repr(backend)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("cln-rpc://node.example/lightning-rpc", "socket path, not a host"),
        ("cln-rpc://lightning-rpc", "socket path, not a host"),
        ("cln-rpc:///", "absolute path"),
        ("cln-rpc:///" + "d/" * 60 + "lightning-rpc", "longer than a unix socket path"),
        ("cln-rpc:///run/lightning-rpc?rune=" + RUNE, "unknown parameter 'rune'"),
        ("cln-rpc:///run/lightning-rpc?timeout=soon", "timeout must be a number"),
        ("clnrest://?rune=" + RUNE, "needs a host"),
        ("clnrest://node.example:3010", "needs a rune"),
        ("clnrest://node.example:3010?rune=", "needs a rune"),
        ("clnrest://node.example:3010?rune=not%20a%20rune!", "not a rune"),
        ("clnrest://node.example:99999?rune=" + RUNE, "malformed URL"),
        ("clnrest://node.example:3010/v1?rune=" + RUNE, "has no path"),
        (
            "clnrest://node.example:3010?rune=" + RUNE + "&cert=/nonexistent/ca.pem",
            "cannot read the TLS certificate",
        ),
        ("clnrest://node.example:3010?rune=" + RUNE + "&tls=maybe", "tls must be 0 or 1"),
        ("clnrest://node.example:3010?rune=" + RUNE + "&macaroon=abc", "unknown parameter 'macaroon'"),
    ],
)
def test_malformed_urls_are_refused_clearly(tmp_path: Path, url: str, says: str):
    with pytest.raises(ConnectionUrlError) as caught:
        open_backend(url, env(tmp_path))
    message = str(caught.value)
    assert says in message
    assert message.startswith(("cln-rpc", "clnrest"))
    assert RUNE not in message


async def test_a_missing_socket_is_unavailable_and_names_it(tmp_path: Path):
    path = "/tmp/no-such-dir-boltgate/lightning-rpc"
    backend = open_backend(f"cln-rpc://{path}", env(tmp_path))
    for attempt in (
        backend.create_invoice(amount_msat=1_000, description="x"),
        backend.lookup_invoice("ab" * 32),
        backend.node_info(),
    ):
        with pytest.raises(LightningUnavailable) as caught:
            await attempt
        assert caught.value.backend == "cln-rpc" and path in str(caught.value)
    # nothing left: paying is not UNKNOWN but plainly unavailable (safe to try again)
    invoice, _ = foreign_invoice(1_000)
    with pytest.raises(LightningUnavailable):
        await backend.pay_invoice(invoice)


# -- the unix socket client


async def test_answers_split_across_reads_are_reassembled(fake: FakeCln, tmp_path: Path):
    fake.split_writes = True  # 7 bytes a write: JSON tokens and UTF-8 characters are cut in two
    backend = rpc_backend(fake, tmp_path)
    created = await backend.create_invoice(amount_msat=9_000, description="café ☕ 𝄞 — long enough" * 3)
    assert bolt11.decode(created.payment_request).description == "café ☕ 𝄞 — long enough" * 3
    state = await backend.lookup_invoice(created.payment_hash)
    assert state.status is InvoiceStatus.OPEN


async def _raw_socket_server(directory: Path, answer: bytes, close: bool) -> asyncio.Server:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(answer)
        await writer.drain()
        if close:
            writer.close()
        else:
            await asyncio.sleep(5)

    return await asyncio.start_unix_server(serve, path=str(directory / "lightning-rpc"))


@pytest.mark.parametrize(
    ("answer", "close", "error"),
    [
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", True, LightningProtocolError),
        (b'{"jsonrpc": "2.0", "id": "x", "result": {"id":\n\n', False, LightningProtocolError),
        (b'{"jsonrpc": "2.0", "id": "boltgate:getinfo#1", "res', True, LightningUnavailable),
        (b"", True, LightningUnavailable),
        (b'{"jsonrpc": "2.0", "id": "someone-else", "result": {}}\n\n', False, LightningProtocolError),
        (b'["jsonrpc"]\n\n', False, LightningProtocolError),
    ],
)
async def test_broken_socket_answers_map_into_the_error_tree(
    tmp_path: Path, answer: bytes, close: bool, error: type
):
    directory = Path(tempfile.mkdtemp(dir="/tmp", prefix="cln-"))
    server = await _raw_socket_server(directory, answer, close)
    try:
        backend = open_backend(f"cln-rpc://{directory}/lightning-rpc?timeout=2", env(tmp_path))
        with pytest.raises(error) as caught:
            await backend.node_info()
        assert caught.value.backend == "cln-rpc"
    finally:
        server.close()
        shutil.rmtree(directory, ignore_errors=True)


async def test_notifications_on_the_socket_are_skipped(tmp_path: Path):
    directory = Path(tempfile.mkdtemp(dir="/tmp", prefix="cln-"))
    getinfo = (
        b'{"jsonrpc":"2.0","id":"boltgate:getinfo#1","result":{"id":"02'
        + b"ab" * 32
        + b'","alias":"a","network":"regtest"}}\n\n'
    )
    notification = b'{"jsonrpc":"2.0","method":"log","params":{"level":"info","message":"hi"}}\n\n'
    server = await _raw_socket_server(directory, notification + getinfo, True)
    try:
        backend = open_backend(f"cln-rpc://{directory}/lightning-rpc", env(tmp_path))
        assert (await backend.node_info()).alias == "a"
    finally:
        server.close()
        shutil.rmtree(directory, ignore_errors=True)


# -- invoices


async def test_the_week_long_default_expiry_is_never_used(fake: FakeCln, tmp_path: Path):
    backend = rpc_backend(fake, tmp_path)
    created = await backend.create_invoice(amount_msat=5_000, description="x")
    sent = [params for _, method, params in fake.calls if method == "invoice"]
    assert sent[-1]["expiry"] == 3600 and sent[-1]["label"].startswith("boltgate-")
    assert sent[-1]["label"] == created.backend_invoice_id
    assert bolt11.decode(created.payment_request).expiry == 3600
    await backend.create_invoice(amount_msat=5_000, description="y", expiry_seconds=120)
    assert [p["expiry"] for _, m, p in fake.calls if m == "invoice"] == [3600, 120]


async def test_a_description_hash_needs_its_description(fake: FakeCln, tmp_path: Path):
    backend = rpc_backend(fake, tmp_path)
    text = '[["text/plain","a long LNURL description"]]'
    digest = hashlib.sha256(text.encode()).digest()
    created = await backend.create_invoice(amount_msat=5_000, description=text, description_hash=digest)
    decoded = bolt11.decode(created.payment_request)
    assert decoded.description_hash == digest and decoded.description is None
    assert [p.get("deschashonly") for _, m, p in fake.calls if m == "invoice"] == [True]
    with pytest.raises(LightningUnsupported) as caught:
        await backend.create_invoice(amount_msat=5_000, description_hash=digest)
    assert caught.value.backend == "cln-rpc"


async def test_a_description_too_long_for_the_invoice_is_committed_to_by_hash(fake: FakeCln, tmp_path: Path):
    backend = rpc_backend(fake, tmp_path)
    short = await backend.create_invoice(amount_msat=5_000, description="é" * 319)  # 638 bytes
    assert bolt11.decode(short.payment_request).description == "é" * 319
    text = "é" * 320  # 640 bytes: more than a d field holds
    created = await backend.create_invoice(amount_msat=5_000, description=text)
    assert bolt11.decode(created.payment_request).description_hash == hashlib.sha256(text.encode()).digest()
    assert [p.get("deschashonly") for _, m, p in fake.calls if m == "invoice"] == [None, True]


async def test_expired_and_paid_invoices(fake: FakeCln, tmp_path: Path):
    backend = rpc_backend(fake, tmp_path)
    first = await backend.create_invoice(amount_msat=5_000, description="late", expiry_seconds=60)
    fake.invoices[-1]["expires_at"] -= 120
    assert (await backend.lookup_invoice(first.payment_hash)).status is InvoiceStatus.CANCELED
    second = await backend.create_invoice(amount_msat=5_000, description="overpaid")
    fake.settle(second.payment_hash, amount_msat=5_500)
    state = await backend.lookup_invoice(second.payment_hash.upper())
    assert state.status is InvoiceStatus.SETTLED and state.amount_received_msat == 5_500


async def test_an_invoice_of_another_network_is_refused(fake: FakeCln, tmp_path: Path):
    backend = open_backend(f"cln-rpc://{fake.socket_path}", env(tmp_path, "mainnet"))
    with pytest.raises(LightningProtocolError, match="another network"):
        await backend.create_invoice(amount_msat=5_000, description="x")


# -- settlements


async def test_waitanyinvoice_resumes_after_a_pay_index(fake: FakeCln, tmp_path: Path):
    backend = rpc_backend(fake, tmp_path)
    hashes = []
    for n in range(3):
        created = await backend.create_invoice(amount_msat=1_000 * (n + 1), description=f"#{n}")
        fake.settle(created.payment_hash)
        hashes.append(created.payment_hash)

    async def take(after: int, count: int) -> list[tuple[int, str]]:
        seen = []
        async for settlement in backend.settlements(after):
            seen.append((settlement.settle_index, settlement.payment_hash))
            if len(seen) == count:
                return seen
        raise AssertionError("the stream ended")

    assert await asyncio.wait_for(take(0, 3), 5) == [(1, hashes[0]), (2, hashes[1]), (3, hashes[2])]
    assert await asyncio.wait_for(take(2, 1), 5) == [(3, hashes[2])]
    asked = [p["lastpay_index"] for _, m, p in fake.calls if m == "waitanyinvoice"]
    assert asked == [0, 1, 2, 2]


async def test_a_waitanyinvoice_timeout_just_waits_again(
    fake: FakeCln, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(cln, "WAIT", 0)  # every long poll times out at once (CLN's error 904)
    backend = open_backend(rest_url(fake), env(tmp_path))
    created = await backend.create_invoice(amount_msat=2_000, description="later")

    async def first() -> int:
        async for settlement in backend.settlements(0):
            return settlement.settle_index
        raise AssertionError("the stream ended")

    task = asyncio.ensure_future(first())
    await asyncio.sleep(0.3)
    assert not task.done()
    assert len([m for _, m, _ in fake.calls if m == "waitanyinvoice"]) >= 2
    fake.settle(created.payment_hash)
    assert await asyncio.wait_for(task, 5) == 1
    await backend.close()


# -- runes and TLS


async def test_an_invoice_only_rune_receives_but_cannot_pay(fake: FakeCln, tmp_path: Path):
    rune = fake.make_rune({"invoice", "listinvoices", "waitanyinvoice"})
    backend = open_backend(rest_url(fake, rune), env(tmp_path))
    created = await backend.create_invoice(amount_msat=1_000, description="ok")
    assert (await backend.lookup_invoice(created.payment_hash)).status is InvoiceStatus.OPEN
    invoice, _ = foreign_invoice(1_000)
    with pytest.raises(LightningRejected) as caught:
        await backend.pay_invoice(invoice)
    assert "rune" in str(caught.value) and rune not in str(caught.value)
    assert not fake.pays  # the node never saw the payment
    with pytest.raises(LightningRejected):
        await backend.node_info()
    await backend.close()


async def test_a_certificate_that_does_not_match_is_rejected(fake: FakeCln, tmp_path: Path):
    other, _ = make_cert(tmp_path)
    url = f"clnrest://127.0.0.1:{fake.port}?rune={fake.rune}&cert={other}"
    backend = open_backend(url, env(tmp_path))
    with pytest.raises(LightningRejected) as caught:
        await backend.node_info()
    assert caught.value.backend == "clnrest" and "certificate" in str(caught.value)
    assert fake.rune not in str(caught.value)
    await backend.close()
    assert fake.cert_path is not None
    der = base64.urlsafe_b64encode(der_of(fake.cert_path)).decode().rstrip("=")
    pinned = open_backend(f"clnrest://127.0.0.1:{fake.port}?rune={fake.rune}&cert={der}", env(tmp_path))
    assert (await pinned.node_info()).pubkey == fake.pubkey
    await pinned.close()


async def test_plain_http_with_tls_0(tmp_path: Path):
    directory = Path(tempfile.mkdtemp(dir="/tmp", prefix="cln-"))
    node = FakeCln(directory, network="mainnet", tls=False)
    await node.start()
    try:
        backend = open_backend(
            f"clnrest://127.0.0.1:{node.port}?rune={node.rune}&tls=0", env(tmp_path, "mainnet")
        )
        info = await backend.node_info()
        assert info.network == "mainnet" and info.backend == "clnrest"  # getinfo says "bitcoin"
        await backend.close()
    finally:
        await node.stop()
        shutil.rmtree(directory, ignore_errors=True)


# -- paying


async def test_pay_sends_an_absolute_fee_limit(fake: FakeCln, tmp_path: Path):
    backend = rpc_backend(fake, tmp_path)
    invoice, preimage = foreign_invoice(50_000)
    fake.learn(preimage)
    result = await backend.pay_invoice(invoice, max_fee_msat=2)
    assert result.status is PaymentStatus.SETTLED and result.fee_msat == 2
    sent = [p for _, m, p in fake.calls if m == "pay"][-1]
    assert sent == {"bolt11": invoice, "maxfee": 2, "retry_for": cln.PAY_RETRY_FOR}
    with pytest.raises(LightningUnsupported):
        await backend.pay_invoice(invoice, amount_msat=60_000)


@pytest.mark.parametrize(
    ("error", "recorded", "status"),
    [
        (RpcError(205, "Could not find a route"), None, PaymentStatus.FAILED),
        (RpcError(207, "Invoice expired"), None, PaymentStatus.FAILED),
        (RpcError(-32602, "Invalid bolt11: Prefix bc is not for regtest"), None, PaymentStatus.FAILED),
        (
            RpcError(200, "Payment is pending with full amount already commited"),
            "pending",
            PaymentStatus.PENDING,
        ),
        (RpcError(201, "Already succeeded to 02ab"), "complete", PaymentStatus.SETTLED),
        (RpcError(-1, "something odd"), None, PaymentStatus.FAILED),  # refused, nothing on record
        (RpcError(-1, "something odd"), "pending", PaymentStatus.PENDING),
        (RpcError(-32603, "Internal error"), None, PaymentStatus.UNKNOWN),
    ],
)
async def test_pay_error_codes(
    fake: FakeCln,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    error: RpcError,
    recorded: str | None,
    status: PaymentStatus,
):
    invoice, preimage = foreign_invoice(7_000)
    payment_hash = bolt11.decode(invoice).payment_hash.hex()

    async def pay(params: object) -> dict[str, object]:
        if recorded:
            entry = {"payment_hash": payment_hash, "status": recorded, "created_at": 1, "created_index": 1}
            if recorded == "complete":
                entry.update(preimage=preimage, amount_msat=7_000, amount_sent_msat=7_001)
            fake.pays.append({**entry, "bolt11": invoice})
        raise error

    monkeypatch.setattr(fake, "_m_pay", pay)
    result = await rpc_backend(fake, tmp_path).pay_invoice(invoice, max_fee_msat=10)
    assert result.status is status
    assert result.error and str(error.code) in result.error
    if status is PaymentStatus.SETTLED:
        assert result.preimage == preimage and result.fee_msat == 1


async def test_a_garbled_pay_answer_is_unknown_never_failed(fake: FakeCln, tmp_path: Path):
    invoice, preimage = foreign_invoice(7_000)
    fake.learn(preimage)
    await fake.set_fault("garbage")
    result = await rpc_backend(fake, tmp_path).pay_invoice(invoice, max_fee_msat=10)
    assert result.status is PaymentStatus.UNKNOWN


async def test_a_complete_payment_without_its_preimage_is_not_settled(
    fake: FakeCln, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    invoice, _preimage = foreign_invoice(7_000)
    payment_hash = bolt11.decode(invoice).payment_hash.hex()

    async def pay(params: object) -> dict[str, object]:
        return {
            "payment_hash": payment_hash,
            "status": "complete",
            "payment_preimage": "00" * 32,
            "amount_msat": 7_000,
            "amount_sent_msat": 7_000,
            "parts": 1,
            "created_at": 1,
        }

    monkeypatch.setattr(fake, "_m_pay", pay)
    result = await rpc_backend(fake, tmp_path).pay_invoice(invoice)
    assert result.status is PaymentStatus.UNKNOWN
