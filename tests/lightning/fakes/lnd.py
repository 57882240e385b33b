"""A fake LND REST API on 127.0.0.1, built from LND's documented REST shapes.

What it copies from LND (``lnrpc/lightning.yaml``, ``lnrpc/routerrpc/router.yaml``,
``rpcserver.go``, ``routerrpc/router_server.go``, grpc-gateway's ``runtime/errors.go`` and
``runtime/handler.go``):

- HTTPS with its own self-signed certificate (:func:`tests.lightning.fakes.tls.make_cert`);
- real macaroons (binary v2, pymacaroons) checked against the node's root key from the
  ``Grpc-Metadata-macaroon`` hex header; the permissions a macaroon grants are listed in its
  identifier (LND encodes them there too) and checked per endpoint as LND's ``macPermissions``
  does; refusals are gRPC code 2 (HTTP 500): ``expected 1 macaroon, got 0``, ``verification
  failed: signature mismatch after caveat verification``, ``permission denied``;
- protobuf JSON with proto field names, every field present, 64-bit integers as strings, bytes
  as base64 (lnrpc.Payment's hashes are hex strings), enums by name;
- unary errors ``{"code", "message", "details"}``, stream errors ``{"error": {…}}``, with the
  HTTP status of the gRPC code (NotFound 404, AlreadyExists 409, Unknown 500…);
- server streams as newline-delimited ``{"result": …}``, whose headers are written only with the
  first message (as grpc-gateway does);
- AddInvoice, LookupInvoice (``unable to locate invoice``: NotFound), ListInvoices (pages by
  add index), SubscribeInvoices (add and settle backlogs, then new and settled invoices),
  GetInfo, SendPaymentV2 (``invoice is already paid`` / ``payment is in transition``:
  AlreadyExists) and TrackPaymentV2 (``payment isn't initiated``: NotFound).

Invoices are real BOLT11, signed with the fake's node key. A customer pays with :meth:`settle`.
Outgoing payments reach the payees whose preimage the fake is told (:attr:`FakeLnd.payees`, or
the ``preimage_of`` look-up: payment hash -> preimage, both hex); others fail with no route. The
outcome of the next payment is :attr:`FakeLnd.pay_outcome`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import coincurve
import orjson
from aiohttp import web
from pymacaroons import MACAROON_V2, Macaroon, Verifier
from pymacaroons.serializers import BinarySerializer

from boltgate.lightning import bolt11
from tests.lightning.fakes.tls import make_cert, server_context

ADMIN = ("info:read", "invoices:read", "invoices:write", "offchain:read", "offchain:write")
INVOICE = ("invoices:read", "invoices:write", "address:read", "address:write", "onchain:read")
HTTP_OF_CODE = {2: 500, 3: 400, 5: 404, 6: 409, 9: 400, 13: 500, 14: 503}
DEFAULT_EXPIRY = 86400  # LND's invoice expiry when none is asked
SLOW = 2.5  # seconds the "slow" fault waits (the harness's timeout is 1)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
BODY = web.RequestKey("body", dict[str, Any])


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class Invoice:
    preimage: bytes
    payment_hash: bytes
    payment_request: str
    value_msat: int
    memo: str
    description_hash: bytes
    expiry: int
    creation_date: int
    add_index: int
    payment_addr: bytes
    private: bool
    state: str = "OPEN"
    settle_date: int = 0
    settle_index: int = 0
    amt_paid_msat: int = 0

    def json(self) -> dict[str, Any]:
        """lnrpc.Invoice as LND's REST gateway writes it."""
        return {
            "memo": self.memo,
            "r_preimage": b64(self.preimage),
            "r_hash": b64(self.payment_hash),
            "value": str(self.value_msat // 1000),
            "value_msat": str(self.value_msat),
            "settled": self.state == "SETTLED",
            "creation_date": str(self.creation_date),
            "settle_date": str(self.settle_date),
            "payment_request": self.payment_request,
            "description_hash": b64(self.description_hash),
            "expiry": str(self.expiry),
            "fallback_addr": "",
            "cltv_expiry": "80",
            "route_hints": [],
            "private": self.private,
            "add_index": str(self.add_index),
            "settle_index": str(self.settle_index),
            "amt_paid": str(self.amt_paid_msat),
            "amt_paid_sat": str(self.amt_paid_msat // 1000),
            "amt_paid_msat": str(self.amt_paid_msat),
            "state": self.state,
            "htlcs": [],
            "features": {},
            "is_keysend": False,
            "payment_addr": b64(self.payment_addr),
            "is_amp": False,
            "amp_invoice_state": {},
            "is_blinded": False,
        }


@dataclass
class Payment:
    payment_hash: str
    payment_request: str
    value_msat: int
    index: int
    status: str = "IN_FLIGHT"
    preimage: str = "0" * 64
    fee_msat: int = 0
    failure_reason: str = "FAILURE_REASON_NONE"
    created: float = field(default_factory=time.time)

    def json(self) -> dict[str, Any]:
        """lnrpc.Payment (hashes and preimages are hex strings there)."""
        return {
            "payment_hash": self.payment_hash,
            "value": str(self.value_msat // 1000),
            "creation_date": str(int(self.created)),
            "fee": str(self.fee_msat // 1000),
            "payment_preimage": self.preimage,
            "value_sat": str(self.value_msat // 1000),
            "value_msat": str(self.value_msat),
            "payment_request": self.payment_request,
            "status": self.status,
            "fee_sat": str(self.fee_msat // 1000),
            "fee_msat": str(self.fee_msat),
            "creation_time_ns": str(int(self.created * 1e9)),
            "htlcs": [],
            "payment_index": str(self.index),
            "failure_reason": self.failure_reason,
            "first_hop_custom_records": {},
        }


class Refused(Exception):
    """A gRPC error, answered in the gateway's form."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class FakeLnd:
    """One fake node. ``await start()``, then open a backend on :meth:`url`."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        network: str = "regtest",
        preimage_of: Callable[[str], str | None] | None = None,
    ) -> None:
        self.cert_path, self.key_path = make_cert(tmp_path)
        self.network = network
        self.node_key = coincurve.PrivateKey()
        self.pubkey = self.node_key.public_key.format(compressed=True).hex()
        self._root_key = secrets.token_bytes(32)
        self.admin_macaroon = self.bake(ADMIN)
        self.invoice_macaroon = self.bake(INVOICE)
        self.invoices: dict[str, Invoice] = {}
        self.payments: dict[str, Payment] = {}
        self.payees: dict[str, str] = {}  # foreign invoices the network reaches: hash -> preimage
        self._preimage_of = preimage_of or (lambda _hash: None)
        self.fault = "ok"
        self.pay_outcome = "settled"
        self.legacy_not_found = False  # answer unknown invoices as LND before v0.15 (code 2, 500)
        self.requests: list[tuple[str, str, dict[str, Any] | None]] = []  # method, path+query, body
        self._add_index = 0
        self._settle_index = 0
        self._subscribers: set[asyncio.Queue[Invoice | Refused]] = set()
        self._open: set[asyncio.Transport] = set()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- credentials

    def bake(self, permissions: tuple[str, ...], *, root_key: bytes | None = None) -> bytes:
        """A macaroon granting ``permissions`` (``entity:action``), as its binary v2 bytes."""
        identifier = b"\x03" + orjson.dumps(sorted(permissions))
        made = Macaroon(
            location="lnd", identifier=identifier, key=root_key or self._root_key, version=MACAROON_V2
        )
        return bytes(BinarySerializer().serialize_raw(made))

    def url(self, macaroon: bytes | None = None, /, **params: Any) -> str:
        """``lnd-rest://127.0.0.1:<port>?macaroon=<hex>&cert=<path>`` plus ``params``."""
        query = {"macaroon": (macaroon or self.admin_macaroon).hex(), "cert": str(self.cert_path), **params}
        return f"lnd-rest://127.0.0.1:{self.port}?" + "&".join(
            f"{key}={quote(str(value), safe='/')}" for key, value in query.items()
        )

    def _permissions(self, request: web.Request) -> set[str]:
        header = request.headers.get("Grpc-Metadata-macaroon")
        if not header:
            raise Refused(2, "expected 1 macaroon, got 0")
        try:
            raw = bytes.fromhex(header)
            made = Macaroon.deserialize(base64.urlsafe_b64encode(raw).decode(), serializer=BinarySerializer())
        except Exception:
            raise Refused(2, "unable to unmarshal macaroon") from None
        try:
            Verifier().verify(made, self._root_key)
        except Exception:
            raise Refused(2, "verification failed: signature mismatch after caveat verification") from None
        return set(orjson.loads(made.identifier_bytes[1:]))

    # -- serving

    async def start(self) -> None:
        """Listen (again) on 127.0.0.1, on the same port as before when there was one."""
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/v1/invoices", self._add_invoice)
        app.router.add_get("/v1/invoice/{r_hash_str}", self._lookup_invoice)
        app.router.add_get("/v1/invoices", self._list_invoices)
        app.router.add_get("/v1/invoices/subscribe", self._subscribe_invoices)
        app.router.add_get("/v1/getinfo", self._get_info)
        app.router.add_post("/v2/router/send", self._send_payment)
        app.router.add_get("/v2/router/track/{payment_hash}", self._track_payment)
        runner = web.AppRunner(app, shutdown_timeout=0.05, access_log=None)
        await runner.setup()
        site = web.TCPSite(
            runner,
            "127.0.0.1",
            self.port,
            ssl_context=server_context(self.cert_path, self.key_path),
            reuse_address=True,
        )
        await site.start()
        self.port = runner.addresses[0][1]
        self._runner = runner

    async def stop(self) -> None:
        """Stop listening and cut every connection (streams included)."""
        for transport in list(self._open):
            transport.abort()
        self._open.clear()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def set_fault(self, name: str) -> None:
        if name == "refused":
            await self.stop()
        elif self._runner is None:
            await self.start()
        self.fault = name

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body = None
        if request.can_read_body:
            try:
                body = orjson.loads(await request.read())
            except orjson.JSONDecodeError:
                return _unary_error(Refused(3, "unexpected token in JSON body"))
        self.requests.append((request.method, request.path_qs, body))
        if request.transport is not None:
            self._open.add(request.transport)
        if self.fault == "slow":
            await asyncio.sleep(SLOW)
        if self.fault == "error5xx":
            return _unary_error(
                Refused(
                    2, "the RPC server is in the process of starting up, but not yet ready to accept calls"
                )
            )
        if self.fault == "garbage":
            return web.Response(status=200, text="<html>upstream says hello</html>", content_type="text/html")
        request[BODY] = body if isinstance(body, dict) else {}
        try:
            return await handler(request)
        except Refused as refused:
            return _unary_error(refused)
        except ConnectionResetError:  # the client went away (a stream it no longer reads)
            return _GONE

    def _need(self, request: web.Request, permission: str) -> None:
        if permission not in self._permissions(request):
            raise Refused(2, "permission denied")

    # -- invoices

    async def _add_invoice(self, request: web.Request) -> web.StreamResponse:
        self._need(request, "invoices:write")
        body = request[BODY]
        value = int(body.get("value") or 0)
        value_msat = int(body.get("value_msat") or 0)
        if value and value_msat and value * 1000 != value_msat:
            raise Refused(2, f"msat: {value_msat} and sat: {value} values not equal")
        amount = value_msat or value * 1000
        memo = body.get("memo") or ""
        if len(memo.encode()) > 1024:
            raise Refused(2, f"memo too large: {len(memo.encode())} bytes (maxsize=1024)")
        description_hash = base64.b64decode(body.get("description_hash") or "")
        if description_hash and len(description_hash) != 32:
            raise Refused(2, f"description hash is {len(description_hash)} bytes, must be 32")
        expiry = int(body.get("expiry") or DEFAULT_EXPIRY)
        if expiry > 365 * 24 * 3600:
            raise Refused(2, f"expiry of {expiry} seconds greater than max expiry of 31536000 seconds")
        preimage = secrets.token_bytes(32)
        payment_hash = hashlib.sha256(preimage).digest()
        payment_addr = secrets.token_bytes(32)
        now = int(time.time())
        signed = amount + 1000 if self.fault == "wrong_amount" else amount
        payment_request = bolt11.encode(
            private_key=self.node_key,
            currency=bolt11.NETWORK_PREFIXES[self.network],
            payment_hash=payment_hash,
            payment_secret=payment_addr,
            amount_msat=signed or None,
            timestamp=now,
            description=None if description_hash else memo,
            description_hash=description_hash or None,
            expiry=expiry,
            min_final_cltv_expiry=80,
        )
        self._add_index += 1
        invoice = Invoice(
            preimage=preimage,
            payment_hash=payment_hash,
            payment_request=payment_request,
            value_msat=amount,
            memo=memo,
            description_hash=description_hash,
            expiry=expiry,
            creation_date=now,
            add_index=self._add_index,
            payment_addr=payment_addr,
            private=bool(body.get("private")),
        )
        self.invoices[payment_hash.hex()] = invoice
        self._notify(invoice)
        return _json(
            {
                "r_hash": b64(payment_hash),
                "payment_request": payment_request,
                "add_index": str(invoice.add_index),
                "payment_addr": b64(payment_addr),
            }
        )

    async def _lookup_invoice(self, request: web.Request) -> web.StreamResponse:
        self._need(request, "invoices:read")
        try:
            wanted = bytes.fromhex(request.match_info["r_hash_str"])
        except ValueError:
            raise Refused(2, "encoding/hex: invalid byte") from None
        if len(wanted) != 32:
            raise Refused(2, f"payment hash must be exactly 32 bytes, is instead {len(wanted)}")
        invoice = self.invoices.get(wanted.hex())
        if invoice is None:
            if self.legacy_not_found:
                raise Refused(
                    2, "there are no existing invoices" if not self.invoices else "unable to locate invoice"
                )
            raise Refused(5, "unable to locate invoice")
        return _json(invoice.json())

    async def _list_invoices(self, request: web.Request) -> web.StreamResponse:
        self._need(request, "invoices:read")
        offset = int(request.query.get("index_offset", "0"))
        limit = int(request.query.get("num_max_invoices", "100"))
        pending_only = request.query.get("pending_only") == "true"
        backwards = request.query.get("reversed") == "true"
        ordered = sorted(self.invoices.values(), key=lambda i: i.add_index, reverse=backwards)
        if offset:
            ordered = [i for i in ordered if (i.add_index < offset if backwards else i.add_index > offset)]
        if pending_only:
            ordered = [i for i in ordered if i.state in ("OPEN", "ACCEPTED")]
        page = sorted(ordered[:limit], key=lambda i: i.add_index)
        return _json(
            {
                "invoices": [i.json() for i in page],
                "last_index_offset": str(page[-1].add_index if page else 0),
                "first_index_offset": str(page[0].add_index if page else 0),
            }
        )

    async def _subscribe_invoices(self, request: web.Request) -> web.StreamResponse:
        try:
            self._need(request, "invoices:read")
        except Refused as refused:
            return _stream_error(refused)
        add_index = int(request.query.get("add_index", "0"))
        settle_index = int(request.query.get("settle_index", "0"))
        queue: asyncio.Queue[Invoice | Refused] = asyncio.Queue()
        self._subscribers.add(queue)
        stream = _Stream(request)
        try:
            backlog = []
            if add_index:  # as InvoicesAddedSince: nothing for 0
                backlog += sorted(
                    (i for i in self.invoices.values() if i.add_index > add_index), key=lambda i: i.add_index
                )
            if settle_index:  # as InvoicesSettledSince: nothing for 0
                backlog += sorted(
                    (i for i in self.invoices.values() if i.settle_index > settle_index),
                    key=lambda i: i.settle_index,
                )
            for invoice in backlog:
                await stream.send(invoice.json())
            while True:
                event = await queue.get()
                if isinstance(event, Refused):  # the stream ends with an error chunk
                    await stream.error(event)
                    return stream.response or _stream_error(event)
                invoice = event
                if invoice.state == "SETTLED" and invoice.settle_index <= settle_index:
                    continue
                if invoice.state == "OPEN" and invoice.add_index <= add_index:
                    continue
                await stream.send(invoice.json())
        finally:
            self._subscribers.discard(queue)

    def _notify(self, invoice: Invoice) -> None:
        snapshot = Invoice(**invoice.__dict__)
        for queue in self._subscribers:
            queue.put_nowait(snapshot)

    def end_streams(self, code: int, message: str) -> None:
        """End every invoice subscription with an error chunk (as LND does when it shuts down)."""
        for queue in self._subscribers:
            queue.put_nowait(Refused(code, message))

    # -- what happens on the node's side

    def settle(self, payment_hash: str, amount_msat: int | None = None) -> Invoice:
        """A customer pays the invoice (``amount_msat``: more than asked, when they overpay)."""
        invoice = self.invoices[payment_hash]
        assert invoice.state in ("OPEN", "ACCEPTED"), invoice.state
        self._settle_index += 1
        invoice.state = "SETTLED"
        invoice.settle_index = self._settle_index
        invoice.settle_date = int(time.time())
        invoice.amt_paid_msat = amount_msat or invoice.value_msat
        self._notify(invoice)
        return invoice

    def hold(self, payment_hash: str) -> None:
        """A hold invoice's HTLC arrives and is held (ACCEPTED, not yet paid)."""
        self.invoices[payment_hash].state = "ACCEPTED"

    def cancel(self, payment_hash: str) -> None:
        self.invoices[payment_hash].state = "CANCELED"

    # -- the node

    async def _get_info(self, request: web.Request) -> web.StreamResponse:
        self._need(request, "info:read")
        return _json(
            {
                "version": "0.19.3-beta commit=v0.19.3-beta",
                "commit_hash": "0" * 40,
                "identity_pubkey": self.pubkey,
                "alias": "fake-lnd",
                "color": "#3399ff",
                "num_pending_channels": 0,
                "num_active_channels": 1,
                "num_inactive_channels": 0,
                "num_peers": 1,
                "block_height": 800000,
                "block_hash": "0" * 64,
                "best_header_timestamp": str(int(time.time())),
                "synced_to_chain": True,
                "synced_to_graph": True,
                "testnet": False,
                "chains": [{"chain": "bitcoin", "network": self.network}],
                "uris": [],
                "features": {},
                "require_htlc_interceptor": False,
                "store_final_htlc_resolutions": False,
            }
        )

    # -- paying

    async def _send_payment(self, request: web.Request) -> web.StreamResponse:
        try:
            self._need(request, "offchain:write")
            payment = self._start_payment(request[BODY])
        except Refused as refused:
            return _stream_error(refused)
        body = request[BODY]
        outcome = self.pay_outcome
        preimage = self.payees.get(payment.payment_hash) or self._preimage_of(payment.payment_hash)
        if outcome in ("settled", "drop") and preimage is None:
            outcome = "failed"  # the network cannot reach a payee it does not know
        fee_limit = int(body.get("fee_limit_msat") or 0) or int(body.get("fee_limit_sat") or 0) * 1000
        if outcome in ("settled", "drop"):
            payment.status, payment.preimage = "SUCCEEDED", preimage or ""
            payment.fee_msat = min(fee_limit, 250)
        if outcome == "drop":  # paid, then the connection is cut before any answer
            assert request.transport is not None
            request.transport.abort()
            return _GONE
        stream = _Stream(request)
        if not body.get("no_inflight_updates"):
            await stream.send(
                {**payment.json(), "status": "IN_FLIGHT", "payment_preimage": "0" * 64, "fee_msat": "0"}
            )
        if outcome == "failed":
            payment.status, payment.failure_reason = "FAILED", "FAILURE_REASON_NO_ROUTE"
        if outcome == "pending":
            await asyncio.sleep(3600)  # in flight until the connection goes
        await stream.send(payment.json())
        return stream.response or web.Response(status=200)

    def _start_payment(self, body: dict[str, Any]) -> Payment:
        try:
            decoded = bolt11.decode(body.get("payment_request") or "")
        except bolt11.Bolt11Error as exc:
            raise Refused(2, f"invalid payment request: {exc}") from None
        if decoded.currency != bolt11.NETWORK_PREFIXES[self.network]:
            raise Refused(2, f"invoice not for current active network '{self.network}'")
        if not body.get("timeout_seconds"):
            raise Refused(2, "timeout_seconds must be specified")
        if decoded.expires_at <= time.time():
            raise Refused(2, f"invoice expired. Valid until {time.ctime(decoded.expires_at)}")
        amount = decoded.amount_msat or int(body.get("amt_msat") or 0)
        if not amount:
            raise Refused(2, "amount must be specified when paying a zero amount invoice")
        payment_hash = decoded.payment_hash.hex()
        existing = self.payments.get(payment_hash)
        if existing is not None and existing.status == "SUCCEEDED":
            raise Refused(6, "invoice is already paid")
        if existing is not None and existing.status == "IN_FLIGHT":
            raise Refused(6, "payment is in transition")
        payment = Payment(payment_hash, body["payment_request"], amount, index=len(self.payments) + 1)
        self.payments[payment_hash] = payment
        return payment

    async def _track_payment(self, request: web.Request) -> web.StreamResponse:
        try:
            self._need(request, "offchain:read")
            raw = base64.urlsafe_b64decode(request.match_info["payment_hash"])
        except Refused as refused:
            return _stream_error(refused)
        payment = self.payments.get(raw.hex())
        if payment is None:
            return _stream_error(Refused(5, "payment isn't initiated"))
        stream = _Stream(request)
        in_flight = payment.status == "IN_FLIGHT"
        if in_flight and request.query.get("no_inflight_updates") == "true":
            await asyncio.sleep(3600)
        await stream.send(payment.json())
        if in_flight:
            await asyncio.sleep(3600)  # the next update comes when the payment ends
        return stream.response or web.Response(status=200)


class _Stream:
    """A grpc-gateway server stream: the headers go with the first message."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response: web.StreamResponse | None = None

    async def send(self, result: dict[str, Any]) -> None:
        await self._write({"result": result})

    async def error(self, refused: Refused) -> None:
        await self._write({"error": _status(refused.code, refused.message)})

    async def _write(self, message: dict[str, Any]) -> None:
        if self.response is None:
            self.response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            self.response.enable_chunked_encoding()
            await self.response.prepare(self.request)
        await self.response.write(orjson.dumps(message) + b"\n")


class _Gone(web.StreamResponse):
    """What a handler whose client has gone answers: nothing more is written."""

    @property
    def prepared(self) -> bool:
        return True


_GONE = _Gone()


def _status(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "details": []}


def _json(body: dict[str, Any]) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def _unary_error(refused: Refused) -> web.Response:
    return web.Response(
        status=HTTP_OF_CODE.get(refused.code, 500),
        body=orjson.dumps(_status(refused.code, refused.message)),
        content_type="application/json",
    )


def _stream_error(refused: Refused) -> web.Response:
    """A stream that fails before its first message: the status of the code, ``{"error": …}``."""
    return web.Response(
        status=HTTP_OF_CODE.get(refused.code, 500),
        body=orjson.dumps({"error": _status(refused.code, refused.message)}) + b"\n",
        content_type="application/json",
    )
