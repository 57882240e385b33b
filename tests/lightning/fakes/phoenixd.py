"""A fake phoenixd: its HTTP API and websocket as ``Api.kt`` serves them, on 127.0.0.1 only.

Built from phoenixd's ``Api.kt`` and ``json/JsonSerializers.kt`` (ACINQ/phoenixd):

- HTTP Basic auth, empty user name; the full-access password for everything, the limited-access
  one for everything but paying (``payinvoice`` answers it 401, as Ktor's ``full-access`` realm
  does); a 401 says "Invalid authentication (use basic auth with the http password set in
  phoenix.conf)";
- form-encoded POST bodies; answers in (pretty-printed) JSON, null fields left out
  (``explicitNulls = false``); errors in text/plain (400 for a bad parameter, 404 "Not found" for
  an unknown payment, 404 "Unknown endpoint (check api doc)", 405 for a wrong method);
- ``/payments/incoming`` lists the payments received, by ``received_at`` (``completedAt``),
  newest first, optionally of one ``externalId``;
- ``/websocket`` pushes ``{"type": "payment_received", "timestamp", "amountSat", "paymentHash",
  "externalId"}`` and pings every 10 s;
- amounts in sat except ``fees`` (msat); ``receivedSat`` is what remained after liquidity fees.

Invoices are real BOLT11 invoices signed with the fake's own node key. The harness injects faults
(``refused`` stops listening and closes the websockets, ``ok`` listens again on the same port;
``error5xx``, ``slow``, ``garbage``, ``wrong_amount``) and decides what ``payinvoice`` does with the
next payment (``settled``, ``failed``, ``pending``: recorded and never answered, ``drop``: paid,
then the connection is cut before the answer).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import secrets
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import coincurve
from aiohttp import WSMsgType, web

from boltgate.lightning import bolt11

UNAUTHORIZED = "Invalid authentication (use basic auth with the http password set in phoenix.conf)"
MAX_DESCRIPTION = 128


def _now_ms() -> int:
    return int(time.time() * 1000)


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(body, indent=4),
        content_type="application/json",
        charset="UTF-8",
    )


def _text(text: str, status: int) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain", charset="UTF-8")


class BadRequest(Exception):
    """Ktor's BadRequestException and its kin: phoenixd answers 400 with the message."""


def _missing(name: str) -> BadRequest:
    return BadRequest(f"Request parameter {name} is missing")


def _not_a(name: str, kind: str) -> BadRequest:
    return BadRequest(f"Request parameter {name} couldn't be parsed/converted to {kind}")


def _optional_long(form: Any, name: str) -> int | None:
    raw = form.get(name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise _not_a(name, "integer") from None


def _hex32(raw: str | None, name: str) -> bytes:
    if raw is None:
        raise _missing(name)
    try:
        value = bytes.fromhex(raw)
    except ValueError:
        raise _not_a(name, "hex32") from None
    if len(value) != 32:
        raise _not_a(name, "hex32")
    return value


@dataclass
class Incoming:
    preimage: bytes
    invoice: str
    requested_sat: int | None
    description: str | None
    created_at: int
    expiry: int
    external_id: str | None
    received_msat: int = 0
    fees_msat: int = 0
    completed_at: int | None = None

    @property
    def payment_hash(self) -> str:
        return hashlib.sha256(self.preimage).hexdigest()

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": "incoming_payment",
            "subType": "lightning",
            "paymentHash": self.payment_hash,
            "preimage": self.preimage.hex(),
            "externalId": self.external_id,
            "description": self.description,
            "invoice": self.invoice,
            "isPaid": self.completed_at is not None,
            "isExpired": _now_ms() > self.created_at + self.expiry * 1000,
            "requestedSat": self.requested_sat,
            "receivedSat": self.received_msat // 1000,
            "fees": self.fees_msat,
            "expiresAt": self.created_at + self.expiry * 1000,
            "completedAt": self.completed_at,
            "createdAt": self.created_at,
        }
        return {k: v for k, v in body.items() if v is not None}


@dataclass
class Outgoing:
    payment_id: str
    payment_hash: str
    invoice: str
    amount_msat: int
    status: str  # pending, succeeded, failed
    preimage: str | None = None
    fees_msat: int = 0
    created_at: int = field(default_factory=_now_ms)
    completed_at: int | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": "outgoing_payment",
            "subType": "lightning",
            "paymentId": self.payment_id,
            "paymentHash": self.payment_hash,
            "preimage": self.preimage,
            "isPaid": self.status == "succeeded",
            "sent": (self.amount_msat + self.fees_msat) // 1000,
            "fees": self.fees_msat if self.status == "succeeded" else 0,
            "invoice": self.invoice,
            "completedAt": self.completed_at,
            "createdAt": self.created_at,
        }
        return {k: v for k, v in body.items() if v is not None}


_RANK = {"succeeded": 3, "pending": 2, "failed": 1}


class FakePhoenixd:
    """One phoenixd on 127.0.0.1; ``port`` is fixed at the first start and kept across restarts."""

    def __init__(
        self,
        *,
        chain: str = "regtest",
        currency: str = "bcrt",
        ssl_context: ssl.SSLContext | None = None,
        preimage_of: Callable[[str], str | None] | None = None,
        slow_seconds: float = 3.0,
    ) -> None:
        self.password = secrets.token_hex(32)
        self.limited_password = secrets.token_hex(32)
        self.key = coincurve.PrivateKey()
        self.node_id = self.key.public_key.format(compressed=True).hex()
        self.chain = chain
        self.currency = currency
        self.ssl_context = ssl_context
        self.slow_seconds = slow_seconds
        self.routing_fee_msat = 1_000
        self.answer_pings = True  # False: a socket that went silent (its pings go unanswered)
        self.port = 0
        self.fault = "ok"
        self.pay_outcome = "settled"
        self.incoming: dict[str, Incoming] = {}
        self.outgoing: dict[str, Outgoing] = {}
        self.preimages: dict[str, str] = {}  # payment hash -> preimage of invoices it can "pay"
        self.requests: list[tuple[str, str, str, dict[str, str]]] = []  # method, path, content type, form
        self._preimage_of = preimage_of
        self._sockets: set[web.WebSocketResponse] = set()
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()

    # -- life cycle

    @property
    def url_host(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/getinfo", self._getinfo)
        app.router.add_post("/createinvoice", self._createinvoice)
        app.router.add_get("/payments/incoming", self._incoming_list)
        app.router.add_get("/payments/incoming/{paymentHash}", self._incoming)
        app.router.add_get("/payments/outgoing/{uuid}", self._outgoing_by_id)
        app.router.add_get("/payments/outgoingbyhash/{paymentHash}", self._outgoing_by_hash)
        app.router.add_post("/payinvoice", self._payinvoice)
        app.router.add_get("/websocket", self._websocket)
        runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port, ssl_context=self.ssl_context, reuse_address=True)
        await site.start()
        if not self.port:
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._closing = asyncio.Event()
        self._runner = runner

    async def stop(self) -> None:
        """Stop listening: open websockets are closed, connections cut, pending answers dropped."""
        self._closing.set()
        for socket in list(self._sockets):
            await socket.close(code=1001, message=b"phoenixd is shutting down")
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def set_fault(self, name: str) -> None:
        if name == "refused":
            await self.stop()
        elif self._runner is None:
            await self.start()
        self.fault = name

    async def set_pay_outcome(self, name: str) -> None:
        assert name in ("settled", "failed", "pending", "drop"), name
        self.pay_outcome = name

    # -- what happens outside phoenixd's API

    async def settle(self, payment_hash: str, *, fee_msat: int = 0, amount_msat: int | None = None) -> None:
        """A customer pays the invoice (``fee_msat``: phoenixd's liquidity fee taken from it)."""
        payment = self.incoming[payment_hash]
        paid = amount_msat if amount_msat is not None else (payment.requested_sat or 0) * 1000
        payment.received_msat = paid - fee_msat
        payment.fees_msat = fee_msat
        payment.completed_at = _now_ms()
        event = {
            "type": "payment_received",
            "timestamp": _now_ms(),
            "amountSat": payment.received_msat // 1000,
            "paymentHash": payment_hash,
            "externalId": payment.external_id,
        }
        await self.push({k: v for k, v in event.items() if v is not None})

    async def push(self, event: dict[str, Any]) -> None:
        for socket in list(self._sockets):
            if not socket.closed:
                await socket.send_str(json.dumps(event, indent=4))

    async def push_raw(self, text: str) -> None:
        for socket in list(self._sockets):
            await socket.send_str(text)

    def learn(self, preimage_hex: str) -> None:
        """Let the fake "pay" invoices with this preimage (it stands for the whole network)."""
        self.preimages[hashlib.sha256(bytes.fromhex(preimage_hex)).hexdigest()] = preimage_hex

    @property
    def websockets(self) -> int:
        return sum(1 for socket in self._sockets if not socket.closed)

    # -- the HTTP machinery: routing errors, faults, authentication

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        route_error = request.match_info.http_exception
        if isinstance(route_error, web.HTTPMethodNotAllowed):
            return _text("Invalid http method (use the correct GET/POST)", 405)
        if route_error is not None:
            return _text("Unknown endpoint (check api doc)", 404)
        if self.fault == "error5xx":
            return _text("internal error", 500)
        if self.fault == "slow":
            await asyncio.sleep(self.slow_seconds)
        if self.fault == "garbage":
            return web.Response(status=200, text='{"unexpected": tru', content_type="application/json")
        access = self._access(request)
        if access is None or (access == "limited" and request.path == "/payinvoice"):
            return web.Response(
                status=401,
                text=UNAUTHORIZED,
                content_type="text/plain",
                headers={"WWW-Authenticate": 'Basic realm="Ktor Server", charset=UTF-8'},
            )
        form: dict[str, str] = {}
        if request.method == "POST":
            form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        self.requests.append((request.method, request.path, request.content_type, form))
        try:
            return await handler(request)
        except BadRequest as exc:
            return _text(str(exc), 400)

    def _access(self, request: web.Request) -> str | None:
        passwords = []
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                decoded = base64.b64decode(header[6:], validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            if ":" in decoded:
                passwords.append(decoded.split(":", 1)[1])
        if request.path == "/websocket":  # or the password as the websocket subprotocol
            offered = request.headers.get("Sec-WebSocket-Protocol", "")
            passwords += [p.strip() for p in offered.split(",") if p.strip()]
        if any(secrets.compare_digest(p, self.password) for p in passwords):
            return "full"
        if any(secrets.compare_digest(p, self.limited_password) for p in passwords):
            return "limited"
        return None

    # -- the endpoints

    async def _getinfo(self, request: web.Request) -> web.Response:
        return _json(
            {
                "nodeId": self.node_id,
                "channels": [
                    {
                        "state": "Normal",
                        "channelId": "11" * 32,
                        "balanceSat": 250_000,
                        "inboundLiquiditySat": 1_750_000,
                        "capacitySat": 2_000_000,
                        "fundingTxId": "22" * 32,
                    }
                ],
                "chain": self.chain,
                "blockHeight": 840_000,
                "version": "0.6.2-fake",
            }
        )

    async def _createinvoice(self, request: web.Request) -> web.Response:
        form = await request.post()
        amount_sat = _optional_long(form, "amountSat")
        description = form.get("description")
        if isinstance(description, str) and len(description.encode("utf-16-le")) // 2 > MAX_DESCRIPTION:
            raise BadRequest(f"Request parameter description is too long (max {MAX_DESCRIPTION} characters)")
        raw_hash = form.get("descriptionHash")
        description_hash = _hex32(raw_hash, "descriptionHash") if isinstance(raw_hash, str) else None
        if (description is None) == (description_hash is None):
            raise BadRequest("Must provide either a description or descriptionHash")
        expiry = _optional_long(form, "expirySeconds") or 86_400
        preimage = secrets.token_bytes(32)
        signed_msat = None if amount_sat is None else amount_sat * 1000
        if self.fault == "wrong_amount" and signed_msat is not None:
            signed_msat += 1_000
        now = _now_ms()
        invoice = bolt11.encode(
            private_key=self.key,
            currency=self.currency,
            payment_hash=hashlib.sha256(preimage).digest(),
            payment_secret=secrets.token_bytes(32),
            amount_msat=signed_msat,
            timestamp=now // 1000,
            description=description if isinstance(description, str) else None,
            description_hash=description_hash,
            expiry=expiry,
            min_final_cltv_expiry=144,
        )
        external_id = form.get("externalId")
        payment = Incoming(
            preimage=preimage,
            invoice=invoice,
            requested_sat=amount_sat,
            description=description if isinstance(description, str) else None,
            created_at=now,
            expiry=expiry,
            external_id=external_id if isinstance(external_id, str) else None,
        )
        self.incoming[payment.payment_hash] = payment
        body: dict[str, Any] = {"paymentHash": payment.payment_hash, "serialized": invoice}
        if amount_sat is not None:
            body = {"amountSat": amount_sat, **body}
        return _json(body)

    async def _incoming_list(self, request: web.Request) -> web.Response:
        """Received payments (``all=true``: every invoice) between from and to (ms), newest first."""
        query = request.query
        start = _optional_long(query, "from") or 0
        end = _optional_long(query, "to") or _now_ms()
        limit = _optional_long(query, "limit") or 20
        offset = _optional_long(query, "offset") or 0
        external_id = query.get("externalId")
        every = query.get("all", "").lower() == "true"
        found = [
            p
            for p in self.incoming.values()
            if (external_id is None or p.external_id == external_id)
            and (
                start <= p.created_at <= end
                if every
                else p.completed_at is not None and start <= p.completed_at <= end
            )
        ]
        found.sort(key=lambda p: p.created_at if every else p.completed_at or 0, reverse=True)
        return _json([p.as_json() for p in found[offset : offset + limit]])

    async def _incoming(self, request: web.Request) -> web.Response:
        payment_hash = _hex32(request.match_info["paymentHash"], "paymentHash").hex()
        payment = self.incoming.get(payment_hash)
        if payment is None:
            return _text("Not found", 404)
        return _json(payment.as_json())

    async def _outgoing_by_id(self, request: web.Request) -> web.Response:
        payment = self.outgoing.get(request.match_info["uuid"])
        return _json(payment.as_json()) if payment else _text("Not found", 404)

    async def _outgoing_by_hash(self, request: web.Request) -> web.Response:
        payment_hash = _hex32(request.match_info["paymentHash"], "paymentHash").hex()
        attempts = [p for p in self.outgoing.values() if p.payment_hash == payment_hash]
        if not attempts:
            return _text("Not found", 404)
        return _json(max(attempts, key=lambda p: _RANK[p.status]).as_json())

    async def _payinvoice(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        raw = form.get("invoice")
        if not isinstance(raw, str):
            raise _missing("invoice")
        try:
            invoice = bolt11.decode(raw, require_payment_secret=False)
        except bolt11.Bolt11Error:
            raise _not_a("invoice", "bolt11invoice") from None
        override = _optional_long(form, "amountSat")
        amount_msat = override * 1000 if override is not None else invoice.amount_msat
        if amount_msat is None:
            raise _missing("amountSat")
        payment_hash = invoice.payment_hash.hex()
        preimage = self.preimages.get(payment_hash) or (self._preimage_of and self._preimage_of(payment_hash))
        outcome = self.pay_outcome
        if outcome in ("settled", "drop") and not preimage:
            outcome = "failed"  # nobody on the fake network knows this invoice
        payment = Outgoing(str(uuid.uuid4()), payment_hash, raw, amount_msat, "pending")
        self.outgoing[payment.payment_id] = payment
        if outcome == "pending":
            await self._closing.wait()  # in flight until phoenixd stops: never answered
            raise asyncio.CancelledError
        payment.completed_at = _now_ms()
        if outcome == "failed":
            payment.status = "failed"
            return _json({"paymentHash": payment_hash, "reason": "no route to recipient"})
        payment.status, payment.preimage, payment.fees_msat = "succeeded", preimage, self.routing_fee_msat
        if outcome == "drop":
            assert request.transport is not None
            request.transport.abort()  # paid, and the answer never leaves
            raise asyncio.CancelledError
        return _json(
            {
                "recipientAmountSat": amount_msat // 1000,
                "routingFeeSat": self.routing_fee_msat // 1000,
                "paymentId": payment.payment_id,
                "paymentHash": payment_hash,
                "paymentPreimage": preimage,
            }
        )

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(heartbeat=10.0, autoping=self.answer_pings)
        await socket.prepare(request)
        self._sockets.add(socket)
        try:
            async for message in socket:
                if message.type == WSMsgType.ERROR:
                    break
        finally:
            self._sockets.discard(socket)
        return socket
