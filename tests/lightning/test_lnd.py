"""LND REST specifics: connection URLs (macaroon and certificate forms, lndconnect), the TLS pin,
macaroon permissions, the settlement stream's resume and heartbeat, LND's error answers when
paying, and amounts to the millisatoshi. The contract suite covers the rest."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from boltgate.lightning import bolt11
from boltgate.lightning.base import (
    InvoiceStatus,
    LightningProtocolError,
    LightningRejected,
    LightningTimeout,
    LightningUnavailable,
    LightningUnsupported,
    PaymentStatus,
)
from boltgate.lightning.connection import ConnectionUrlError
from boltgate.lightning.lnd import LndRest, load_macaroon
from boltgate.lightning.registry import BackendEnv, open_backend
from tests.lightning.contract.harness import PREIMAGES, foreign_invoice
from tests.lightning.fakes.lnd import FakeLnd
from tests.lightning.fakes.tls import der_of, make_cert

ENV_DIR = Path("/nonexistent-boltgate-data")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[FakeLnd]:
    node = FakeLnd(tmp_path, preimage_of=PREIMAGES.get)
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


def env(network: str = "regtest") -> BackendEnv:
    return BackendEnv(data_dir=ENV_DIR, network=network)


def lnd(url: str, network: str = "regtest") -> LndRest:
    backend = open_backend(url, env(network))
    assert isinstance(backend, LndRest)
    return backend


@pytest.fixture
async def backend(fake: FakeLnd) -> AsyncIterator[LndRest]:
    made = lnd(fake.url(timeout=1, pay_timeout=1))
    try:
        yield made
    finally:
        await made.close()


def requests_to(fake: FakeLnd, path: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [r for r in fake.requests if r[1].split("?")[0] == path]


# -- connection URLs


def _macaroon_forms(fake: FakeLnd, tmp_path: Path) -> dict[str, str]:
    raw = fake.admin_macaroon
    binary, text = tmp_path / "admin.macaroon", tmp_path / "admin.macaroon.hex"
    binary.write_bytes(raw)
    text.write_text(raw.hex().upper() + "\n")
    return {
        "hex": raw.hex(),
        "HEX": raw.hex().upper(),
        "base64url": b64url(raw),
        "base64": base64.b64encode(raw).decode(),
        "file": str(binary),
        "hex file": str(text),
    }


@pytest.mark.parametrize("form", ["hex", "HEX", "base64url", "base64", "file", "hex file"])
async def test_the_macaroon_may_be_hex_base64url_or_a_file(fake: FakeLnd, tmp_path: Path, form: str):
    macaroon = _macaroon_forms(fake, tmp_path)[form]
    backend = lnd(
        f"lnd-rest://127.0.0.1:{fake.port}?macaroon={quote(macaroon, safe='')}&cert={fake.cert_path}"
    )
    try:
        info = await backend.node_info()
    finally:
        await backend.close()
    assert info.pubkey == fake.pubkey and info.backend == "lnd-rest" and info.network == "regtest"


def test_standard_base64_survives_a_query_string_that_made_its_plus_a_space():
    raw = b"\x02\x01\x03lnd" + b"\xfb\xef\xff" * 12  # base64 with "+" and "/"
    text = base64.b64encode(raw).decode()
    assert "+" in text and "/" in text
    assert load_macaroon(text.replace("+", " ")) == raw.hex()
    assert load_macaroon(b64url(raw)) == load_macaroon(raw.hex()) == raw.hex()


@pytest.mark.parametrize("form", ["path", "pem", "base64url der"])
async def test_the_cert_may_be_a_path_pem_or_base64url_der(fake: FakeLnd, form: str):
    cert = {
        "path": str(fake.cert_path),
        "pem": fake.cert_path.read_text(),
        "base64url der": b64url(der_of(fake.cert_path)),
    }[form]
    backend = lnd(
        f"lnd-rest://127.0.0.1:{fake.port}?macaroon={fake.admin_macaroon.hex()}&cert={quote(cert, safe='')}"
    )
    try:
        assert (await backend.node_info()).pubkey == fake.pubkey
    finally:
        await backend.close()


async def test_an_lndconnect_url_opens_lnd_rest(fake: FakeLnd):
    url = f"lndconnect://127.0.0.1:{fake.port}?cert={b64url(der_of(fake.cert_path))}&macaroon={b64url(fake.admin_macaroon)}"
    backend = lnd(url)
    try:
        created = await backend.create_invoice(amount_msat=10_000, description="lndconnect")
        assert backend.name == "lnd-rest"
        assert (await backend.lookup_invoice(created.payment_hash)).status is InvoiceStatus.OPEN
    finally:
        await backend.close()
    assert "lndconnect" not in repr(backend) and fake.admin_macaroon.hex() not in repr(backend)


def _bad_urls(fake: FakeLnd, tmp_path: Path) -> dict[str, tuple[str, str]]:
    good = fake.admin_macaroon.hex()
    host = f"127.0.0.1:{fake.port}"
    not_lnd = (tmp_path / "other.macaroon").as_posix()
    (tmp_path / "other.macaroon").write_bytes(b"\x01" + b"x" * 40)
    return {
        "no macaroon": (f"lnd-rest://{host}?cert={fake.cert_path}", "needs macaroon="),
        "empty macaroon": (f"lnd-rest://{host}?macaroon=&cert={fake.cert_path}", "needs macaroon="),
        "not hex nor base64": (f"lnd-rest://{host}?macaroon={good[:40]}%21%21", "not an LND macaroon"),
        "odd hex": (f"lnd-rest://{host}?macaroon={good[:-1]}", "not an LND macaroon"),
        "hex of something else": (f"lnd-rest://{host}?macaroon={'de' * 40}", "not an LND macaroon"),
        "file of something else": (f"lnd-rest://{host}?macaroon={not_lnd}", "not an LND macaroon"),
        "missing file": (
            f"lnd-rest://{host}?macaroon=/nonexistent/admin.macaroon",
            "cannot read the macaroon file",
        ),
        "no host": (f"lnd-rest://?macaroon={good}", "needs a host"),
        "port out of range": (f"lnd-rest://127.0.0.1:99999?macaroon={good}", "malformed URL"),
        "port not a number": (f"lnd-rest://127.0.0.1:http?macaroon={good}", "malformed URL"),
        "unreadable cert": (
            f"lnd-rest://{host}?macaroon={good}&cert=/nonexistent/tls.cert",
            "certificate file",
        ),
        "not a cert": (f"lnd-rest://{host}?macaroon={good}&cert=bm90IGEgY2VydA", "certificate"),
        "unknown parameter": (f"lnd-rest://{host}?macaroon={good}&macaroonpath=/x", "unknown parameter"),
        "bad timeout": (f"lnd-rest://{host}?macaroon={good}&timeout=0", "timeout"),
        "bad pay_timeout": (f"lnd-rest://{host}?macaroon={good}&pay_timeout=1.5", "pay_timeout"),
        "bad heartbeat": (f"lnd-rest://{host}?macaroon={good}&heartbeat=soon", "heartbeat"),
        "bad private": (f"lnd-rest://{host}?macaroon={good}&private=maybe", "private"),
        "bad tls": (f"lnd-rest://{host}?macaroon={good}&tls=perhaps", "tls"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "no macaroon",
        "empty macaroon",
        "not hex nor base64",
        "odd hex",
        "hex of something else",
        "file of something else",
        "missing file",
        "no host",
        "port out of range",
        "port not a number",
        "unreadable cert",
        "not a cert",
        "unknown parameter",
        "bad timeout",
        "bad pay_timeout",
        "bad heartbeat",
        "bad private",
        "bad tls",
    ],
)
async def test_malformed_urls_say_what_is_wrong_without_the_secret(fake: FakeLnd, tmp_path: Path, case: str):
    url, says = _bad_urls(fake, tmp_path)[case]
    with pytest.raises(ConnectionUrlError) as caught:
        open_backend(url, env())
    message = str(caught.value)
    assert "lnd-rest" in message and says in message, message
    assert fake.admin_macaroon.hex()[:40] not in message


@pytest.mark.parametrize("name", ["macaroon", "cert"])
async def test_a_merchants_url_may_not_name_files_of_the_gateway(fake: FakeLnd, tmp_path: Path, name: str):
    files = {"macaroon": str(_macaroon_forms(fake, tmp_path)["file"]), "cert": str(fake.cert_path)}
    given = {"macaroon": fake.admin_macaroon.hex(), "cert": b64url(der_of(fake.cert_path)), name: files[name]}
    url = f"lnd-rest://127.0.0.1:{fake.port}?macaroon={given['macaroon']}&cert={given['cert']}"
    await lnd(url).close()  # the operator's own URL may
    with pytest.raises(ConnectionUrlError, match=f"{name} must be given itself"):
        open_backend(url, BackendEnv(data_dir=ENV_DIR, guard=()))
    assert fake.requests == []


# -- TLS and credentials


@pytest.mark.parametrize("pin", ["another certificate", "no pin"])
async def test_a_certificate_other_than_the_pinned_one_is_rejected(fake: FakeLnd, tmp_path: Path, pin: str):
    other, _key = make_cert(tmp_path)
    cert = f"&cert={other}" if pin == "another certificate" else ""
    backend = lnd(f"lnd-rest://127.0.0.1:{fake.port}?macaroon={fake.admin_macaroon.hex()}{cert}&timeout=2")
    try:
        with pytest.raises(LightningRejected) as caught:
            await backend.node_info()
    finally:
        await backend.close()
    assert caught.value.backend == "lnd-rest" and "lnd-rest" in str(caught.value)
    assert "certificate" in str(caught.value)
    assert fake.requests == []  # nothing was sent over the unverified connection


async def test_an_invoice_macaroon_receives_but_cannot_pay(fake: FakeLnd):
    backend = lnd(fake.url(fake.invoice_macaroon, timeout=2))
    try:
        created = await backend.create_invoice(amount_msat=1_000, description="receive only")
        assert (await backend.lookup_invoice(created.payment_hash)).status is InvoiceStatus.OPEN
        invoice, _preimage = foreign_invoice(7_000)
        with pytest.raises(LightningUnsupported, match="offchain:write"):
            await backend.pay_invoice(invoice, max_fee_msat=100)
        with pytest.raises(LightningUnsupported, match="offchain:read"):
            await backend.lookup_payment("ab" * 32)
        with pytest.raises(LightningRejected, match="permission denied"):
            await backend.node_info()  # GetInfo needs info:read, which invoice.macaroon lacks
    finally:
        await backend.close()
    assert fake.payments == {}


async def test_a_forged_macaroon_is_refused_as_lnd_words_it(fake: FakeLnd, backend: LndRest):
    await backend.node_info()
    bad = lnd(fake.url(fake.admin_macaroon[:-1] + bytes([fake.admin_macaroon[-1] ^ 1])))
    try:
        with pytest.raises(LightningRejected, match="signature mismatch"):
            await bad.node_info()
    finally:
        await bad.close()


# -- invoices and amounts


async def test_amounts_are_millisatoshis_to_the_unit(fake: FakeLnd, backend: LndRest):
    created = await backend.create_invoice(amount_msat=1_234_567, description="odd msat", expiry_seconds=120)
    assert created.amount_msat == 1_234_567
    assert bolt11.decode(created.payment_request).amount_msat == 1_234_567
    _method, _path, body = requests_to(fake, "/v1/invoices")[-1]
    assert body == {"value_msat": "1234567", "expiry": "120", "private": False, "memo": "odd msat"}
    settled = fake.settle(created.payment_hash, amount_msat=1_300_001)  # the payer sent more
    state = await backend.lookup_invoice(created.payment_hash)
    assert state.status is InvoiceStatus.SETTLED and state.amount_received_msat == 1_300_001
    assert state.settled_at is not None and int(state.settled_at.timestamp()) == settled.settle_date
    got = await asyncio.wait_for(anext(aiter(backend.settlements(0))), 5)
    assert (got.payment_hash, got.amount_received_msat, got.settle_index) == (
        created.payment_hash,
        1_300_001,
        1,
    )


async def test_a_description_hash_is_sent_instead_of_a_memo(fake: FakeLnd, backend: LndRest):
    digest = hashlib.sha256(b"a long description").digest()
    created = await backend.create_invoice(amount_msat=2_000, description_hash=digest)
    assert bolt11.decode(created.payment_request).description_hash == digest
    _method, _path, body = requests_to(fake, "/v1/invoices")[-1]
    assert body is not None and "memo" not in body and base64.b64decode(body["description_hash"]) == digest


async def test_what_lnd_would_refuse_is_refused_before_asking(fake: FakeLnd, backend: LndRest):
    with pytest.raises(LightningUnsupported, match="1024 bytes"):
        await backend.create_invoice(amount_msat=1_000, description="é" * 513)
    with pytest.raises(LightningUnsupported):
        await backend.create_invoice(amount_msat=0, description="any amount")
    assert fake.requests == []


async def test_an_invoice_for_another_network_is_refused(tmp_path: Path):
    node = FakeLnd(tmp_path, network="mainnet")
    await node.start()
    backend = lnd(node.url(timeout=2))
    try:
        assert (await backend.node_info()).network == "mainnet"
        with pytest.raises(LightningProtocolError, match="another network"):
            await backend.create_invoice(amount_msat=1_000, description="wrong chain")
    finally:
        await backend.close()
        await node.stop()


async def test_invoice_states_map_held_and_cancelled(fake: FakeLnd, backend: LndRest):
    held = await backend.create_invoice(amount_msat=1_000, description="hold")
    fake.hold(held.payment_hash)
    assert (await backend.lookup_invoice(held.payment_hash)).status is InvoiceStatus.OPEN
    gone = await backend.create_invoice(amount_msat=1_000, description="cancel")
    fake.cancel(gone.payment_hash)
    assert (await backend.lookup_invoice(gone.payment_hash)).status is InvoiceStatus.CANCELED
    assert requests_to(fake, f"/v1/invoice/{held.payment_hash}")  # looked up by hex hash


async def test_older_lnds_not_found_answers_are_unknown(fake: FakeLnd, backend: LndRest):
    fake.legacy_not_found = True  # code 2, HTTP 500, as before LND answered NotFound
    assert (await backend.lookup_invoice("ab" * 32)).status is InvoiceStatus.UNKNOWN  # no invoices at all
    await backend.create_invoice(amount_msat=1_000, description="one")
    assert (await backend.lookup_invoice("cd" * 32)).status is InvoiceStatus.UNKNOWN
    await fake.set_fault("error5xx")  # another code-2 error is not "unknown"
    with pytest.raises(LightningUnavailable):
        await backend.lookup_invoice("cd" * 32)


# -- the settlement stream


async def test_the_stream_resumes_from_the_settle_index_after_a_reconnect(fake: FakeLnd, backend: LndRest):
    first, second, third = [
        await backend.create_invoice(amount_msat=1_000 * n, description=f"n{n}") for n in (1, 2, 3)
    ]
    fake.settle(first.payment_hash)
    stream = backend.settlements(0)
    one = await asyncio.wait_for(anext(stream), 5)
    assert (one.payment_hash, one.settle_index) == (first.payment_hash, 1)
    waiting = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.2)
    await fake.set_fault("refused")
    with pytest.raises(LightningUnavailable):
        await asyncio.wait_for(waiting, 5)
    fake.settle(second.payment_hash)  # while the gateway is cut off
    await fake.set_fault("ok")
    resumed = backend.settlements(one.settle_index)
    two = await asyncio.wait_for(anext(resumed), 5)
    assert (two.payment_hash, two.settle_index, two.amount_received_msat) == (second.payment_hash, 2, 2_000)
    assert requests_to(fake, "/v1/invoices/subscribe")[-1][1].endswith("?settle_index=1")
    later = asyncio.ensure_future(anext(resumed))
    await asyncio.sleep(0.2)
    fake.settle(third.payment_hash)
    three = await asyncio.wait_for(later, 5)
    assert (three.payment_hash, three.settle_index) == (third.payment_hash, 3)
    await resumed.aclose()


async def test_a_quiet_stream_checks_the_node_and_resubscribes_without_losing_anything(fake: FakeLnd):
    backend = lnd(fake.url(timeout=1, heartbeat=0.3))
    try:
        paid = await backend.create_invoice(amount_msat=5_000, description="later")
        stream = backend.settlements(0)
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(1.5)  # quiet periods
        assert not waiting.done()
        probes = [r for r in requests_to(fake, "/v1/invoices") if "reversed=true" in r[1]]
        assert len(probes) >= 1 and len(requests_to(fake, "/v1/invoices/subscribe")) >= 2
        fake.settle(paid.payment_hash)
        got = await asyncio.wait_for(waiting, 3)
        assert got.payment_hash == paid.payment_hash
        again = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(1.0)  # quiet again: resubscribed from settle index 1, nothing replayed
        assert not again.done()
        assert requests_to(fake, "/v1/invoices/subscribe")[-1][1].endswith("?settle_index=1")
        again.cancel()
        with pytest.raises(asyncio.CancelledError):
            await again
        await stream.aclose()
    finally:
        await backend.close()


async def test_a_node_that_stops_answering_ends_the_stream(fake: FakeLnd):
    backend = lnd(fake.url(timeout=0.5, heartbeat=0.3))
    try:
        stream = backend.settlements(5)
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.1)
        await fake.set_fault("slow")  # the connection stays up, the node says nothing
        started = time.monotonic()
        with pytest.raises(LightningTimeout):
            await asyncio.wait_for(waiting, 5)
        assert time.monotonic() - started < 3
    finally:
        await backend.close()


async def test_an_error_in_the_stream_ends_it(fake: FakeLnd, backend: LndRest):
    stream = backend.settlements(3)
    waiting = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.2)
    fake.end_streams(14, "lnd is shutting down")
    with pytest.raises(LightningUnavailable, match="lnd is shutting down"):
        await asyncio.wait_for(waiting, 5)


async def test_a_stream_from_zero_catches_up_across_pages(fake: FakeLnd, backend: LndRest, monkeypatch):
    monkeypatch.setattr("boltgate.lightning.lnd.LIST_PAGE", 2)
    made = [await backend.create_invoice(amount_msat=1_000 + n, description=f"p{n}") for n in range(5)]
    for invoice in (made[3], made[0], made[4]):  # settled out of creation order
        fake.settle(invoice.payment_hash)
    stream = backend.settlements(0)
    got = [await asyncio.wait_for(anext(stream), 5) for _ in range(3)]
    await stream.aclose()
    assert [s.payment_hash for s in got] == [made[3].payment_hash, made[0].payment_hash, made[4].payment_hash]
    assert [s.settle_index for s in got] == [1, 2, 3]
    pages = [r[1] for r in requests_to(fake, "/v1/invoices") if "index_offset" in r[1]]
    assert len(pages) == 3


# -- paying


async def test_a_payment_asks_lnd_for_its_limits_and_reports_the_fee(fake: FakeLnd, backend: LndRest):
    invoice, preimage = foreign_invoice(7_000)
    result = await backend.pay_invoice(invoice, max_fee_msat=900)
    assert result.status is PaymentStatus.SETTLED and result.preimage == preimage
    assert result.fee_msat == 250
    _method, _path, body = requests_to(fake, "/v2/router/send")[-1]
    assert body == {
        "payment_request": invoice,
        "timeout_seconds": 1,
        "fee_limit_msat": "900",
        "no_inflight_updates": False,
    }


async def test_an_already_paid_invoice_is_looked_up_not_failed(fake: FakeLnd, backend: LndRest):
    invoice, preimage = foreign_invoice(7_000)
    assert (await backend.pay_invoice(invoice, max_fee_msat=100)).status is PaymentStatus.SETTLED
    again = await backend.pay_invoice(invoice, max_fee_msat=100)  # LND: 409 "invoice is already paid"
    assert again.status is PaymentStatus.SETTLED and again.preimage == preimage
    assert len(requests_to(fake, "/v2/router/send")) == 2
    track = [r for r in fake.requests if r[1].startswith("/v2/router/track/")]
    payment_hash = bytes.fromhex(bolt11.decode(invoice).payment_hash.hex())
    assert track[-1][1].startswith(f"/v2/router/track/{base64.urlsafe_b64encode(payment_hash).decode()}")


async def test_a_payment_in_transition_is_pending(fake: FakeLnd, backend: LndRest):
    invoice, _preimage = foreign_invoice(7_000)
    fake.pay_outcome = "pending"
    assert (await backend.pay_invoice(invoice, max_fee_msat=100)).status is PaymentStatus.PENDING
    again = await backend.pay_invoice(invoice, max_fee_msat=100)  # 409 "payment is in transition"
    assert again.status is PaymentStatus.PENDING
    assert (
        await backend.lookup_payment(bolt11.decode(invoice).payment_hash.hex())
    ).status is PaymentStatus.PENDING


async def test_a_payment_lnd_refuses_to_start_is_failed(fake: FakeLnd, backend: LndRest):
    invoice, _preimage = foreign_invoice(7_000, network="testnet")
    result = await backend.pay_invoice(invoice, max_fee_msat=100)  # code 2, HTTP 500, no record
    assert result.status is PaymentStatus.FAILED
    assert result.error == "invoice not for current active network 'regtest'"
    assert len(requests_to(fake, "/v2/router/send")) == 1 and fake.payments == {}


async def test_a_cut_payment_is_unknown_until_looked_up(fake: FakeLnd, backend: LndRest):
    invoice, preimage = foreign_invoice(7_000)
    fake.pay_outcome = "drop"
    result = await backend.pay_invoice(invoice, max_fee_msat=100)
    assert result.status is PaymentStatus.UNKNOWN
    looked = await backend.lookup_payment(result.payment_hash)
    assert looked.status is PaymentStatus.SETTLED and looked.preimage == preimage


async def test_a_payment_that_cannot_leave_raises(fake: FakeLnd, backend: LndRest):
    invoice, _preimage = foreign_invoice(7_000)
    await fake.set_fault("refused")
    with pytest.raises(LightningUnavailable):
        await backend.pay_invoice(invoice, max_fee_msat=100)
    assert fake.payments == {}


async def test_invoices_that_cannot_be_paid_fail_without_asking(fake: FakeLnd, backend: LndRest):
    assert (await backend.pay_invoice("lnbcrt1garbage")).status is PaymentStatus.FAILED
    invoice, _preimage = foreign_invoice(5_000)
    other = await backend.pay_invoice(invoice, amount_msat=6_000)
    assert other.status is PaymentStatus.FAILED
    assert requests_to(fake, "/v2/router/send") == []
