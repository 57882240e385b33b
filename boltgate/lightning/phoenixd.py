"""phoenixd (ACINQ's Lightning server) over its HTTP API, with settlements pushed on its websocket.

Speaks phoenixd's API as its ``Api.kt`` serves it (documented at
https://phoenix.acinq.co/server/api), always in **sats**:

- ``POST /createinvoice`` (form: ``description`` of at most 128 characters, or ``descriptionHash``;
  ``amountSat``, ``expirySeconds``, ``externalId``) → ``{amountSat, paymentHash, serialized}``;
- ``GET /payments/incoming/{paymentHash}`` → ``{isPaid, isExpired, receivedSat, fees (msat),
  completedAt (ms), …}``, 404 when phoenixd does not know the hash;
- ``GET /payments/incoming?from=&limit=&offset=&externalId=`` → the payments received (newest
  first), to replay the last hour's settlements when the stream (re)opens;
- ``GET /websocket`` → ``{"type": "payment_received", "timestamp", "amountSat", "paymentHash",
  "externalId"}`` for each payment received. Nothing numbers these (``resumable=False``,
  ``settle_index=0``): each subscription replays the last hour, then follows the websocket;
  anything older that a dropped stream missed is found by the reconciler's look-ups;
- ``POST /payinvoice`` (form: ``invoice``, ``amountSat``) → 200 with ``{recipientAmountSat,
  routingFeeSat, paymentId, paymentHash, paymentPreimage}``, or 200 with ``{paymentHash, reason}``
  when the payment failed; phoenixd answers only once the payment is settled or failed;
- ``GET /payments/outgoingbyhash/{paymentHash}`` → ``{isPaid, preimage, fees (msat), completedAt}``,
  404 when unknown (a phoenixd too old to have this endpoint answers 404 too: UNKNOWN);
- ``GET /getinfo`` → ``{nodeId, chain, version, …}``.

Authentication is HTTP Basic with an empty user name and phoenixd's ``http-password`` (full
access) or ``http-password-limited-access`` (everything except paying; a payment with it is
:class:`LightningUnsupported`). phoenixd serves plain HTTP, meant for localhost or a TLS proxy in
front of it, so this backend speaks ``http`` unless the URL says ``tls=1``.

Connection URL: ``phoenixd://:<password>@host[:9740][/path-prefix]`` with the optional
parameters ``tls=1`` (https/wss), ``cert=`` (pin the proxy's certificate; needs ``tls=1``),
``timeout=`` (seconds per request, 15) and ``pay_timeout=`` (seconds to wait for ``payinvoice``,
60; after it the payment is looked up, and is PENDING while phoenixd is still sending it).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
import ssl
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from websockets.asyncio.client import ClientConnection

from boltgate.lightning import bolt11, http, verify, ws
from boltgate.lightning.amounts import whole_sats
from boltgate.lightning.base import (
    CreatedInvoice,
    InvoiceState,
    InvoiceStatus,
    LightningError,
    LightningProtocolError,
    LightningRejected,
    LightningUnsupported,
    NodeInfo,
    PaymentResult,
    PaymentStatus,
    Settlement,
    network_named,
)
from boltgate.lightning.connection import Connection, ConnectionUrlError
from boltgate.lightning.paying import answer_of, settled_or_pending
from boltgate.lightning.registry import BackendEnv

KIND = "phoenixd"
DEFAULT_PORT = 9740
MAX_DESCRIPTION = 128  # phoenixd counts Kotlin String.length: UTF-16 code units
EXTERNAL_ID = "boltgate"  # marks the invoices made by the gateway in phoenixd's own lists
PING_INTERVAL = 10.0  # phoenixd pings every 10 s too; a silent socket is noticed within ~25 s
REPLAY_WINDOW_MS = 3_600_000  # a new subscription replays the settlements of the last hour…
PAGE = 100
REPLAY_PAGES = 10  # …up to 1,000 of them (the reconciler finds any other)
_PUBKEY = re.compile(r"0[23][0-9a-f]{64}")


@dataclasses.dataclass(frozen=True)
class _Settings:
    base_url: str
    ws_url: str
    password: str = dataclasses.field(repr=False)
    timeout: float
    pay_timeout: float
    tls_context: ssl.SSLContext | bool  # for wss (False: plain ws)


def settings_of(connection: Connection) -> tuple[Connection, _Settings]:
    """The URL checked and read; plain HTTP unless ``tls=1`` (phoenixd itself serves HTTP)."""
    password = connection.password or connection.param("password")
    if not password:
        raise ConnectionUrlError(
            f"{KIND}: the URL needs phoenixd's http-password: phoenixd://:<password>@host:{DEFAULT_PORT}"
        )
    if not connection.host:
        raise ConnectionUrlError(f"{KIND}: the URL needs a host: phoenixd://:<password>@host:{DEFAULT_PORT}")
    if connection.port == 0:
        raise ConnectionUrlError(f"{KIND}: port 0 is not a port phoenixd can listen on")
    if not connection.param("tls"):  # phoenixd's default: plain HTTP
        connection = dataclasses.replace(connection, params={**connection.params, "tls": ["0"]})
    if connection.param("cert") is not None and not connection.tls:
        raise ConnectionUrlError(f"{KIND}: cert= pins a TLS certificate, so it needs tls=1")
    base = connection.base_url(DEFAULT_PORT) + quote(connection.path.rstrip("/"), safe="/")
    return connection, _Settings(
        base_url=base,
        ws_url=ws.url_of(base) + "/websocket",
        password=password,
        timeout=connection.timeout,
        pay_timeout=connection.seconds("pay_timeout", 60.0, most=600),
        tls_context=http.verify_of(connection),
    )


def utf16_length(text: str) -> int:
    """The length phoenixd (Kotlin) gives a string: characters beyond the BMP count twice."""
    return len(text.encode("utf-16-le")) // 2


def _plain_text(response: httpx.Response) -> str:
    """phoenixd's own error text (it answers errors in text/plain), shortened to one line."""
    if "json" in response.headers.get("content-type", ""):
        return ""
    text = " ".join(response.content[:400].decode("utf-8", "replace").split())
    return "" if text.startswith("<") else text[:200]


def _refusal(response: httpx.Response) -> Exception | None:
    error = http.status_error(KIND, response)
    text = _plain_text(response) if error is not None else ""
    if not isinstance(error, LightningError) or not text:
        return error
    return type(error)(f"answered HTTP {response.status_code}: {text}", backend=KIND)


def _millis(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


def _received_msat(body: Any) -> int:
    """What the payer paid: phoenixd reports the amount after its liquidity fees (``receivedSat``,
    truncated to the sat) and the fees apart (msat)."""
    received = int(http.field(KIND, body, "receivedSat", int)) * 1000
    fees = body.get("fees", 0)
    if isinstance(fees, bool) or not isinstance(fees, int) or fees < 0:
        raise LightningProtocolError("answered with invalid 'fees'", backend=KIND)
    total = received + fees
    requested = body.get("requestedSat")
    # the truncation of receivedSat can hide up to 999 msat of what was paid; phoenixd only
    # settles an invoice once at least its amount has arrived, so that much was paid
    if isinstance(requested, int) and not isinstance(requested, bool) and 0 < requested * 1000 - total < 1000:
        total = requested * 1000
    return total


def _received_event(message: ws.Message) -> ws.Push | None:
    """What a ``payment_received`` event says was paid (``amountSat``, ``timestamp`` in ms); None
    for other events."""
    try:
        event = orjson.loads(message)
    except orjson.JSONDecodeError:
        raise LightningProtocolError("pushed a websocket message that is not JSON", backend=KIND) from None
    if not isinstance(event, dict):
        raise LightningProtocolError("pushed a websocket message that is not an object", backend=KIND)
    if event.get("type") != "payment_received":
        return None
    payment_hash = http.field(KIND, event, "paymentHash", str).lower()
    if not verify.is_hash(payment_hash):
        raise LightningProtocolError("pushed a payment with an invalid payment hash", backend=KIND)
    amount_sat = http.field(KIND, event, "amountSat", int)
    try:
        received_at = _millis(http.field(KIND, event, "timestamp", int))
    except (ValueError, OverflowError, OSError):
        raise LightningProtocolError("pushed a payment with an invalid timestamp", backend=KIND) from None
    return ws.Push(payment_hash, amount_sat * 1000, received_at)


class PhoenixdBackend:
    """A phoenixd node: receive (any password), pay (the full-access password only)."""

    name = KIND
    resumable = False

    def __init__(self, connection: Connection, *, network: str) -> None:
        connection, self._settings = settings_of(connection)
        self._redacted = connection.redacted()
        self._network = network
        self._http = http.client(connection, auth=httpx.BasicAuth("", self._settings.password))
        self._guard = connection.guard

    def __repr__(self) -> str:
        return f"PhoenixdBackend({self._redacted})"

    # -- plumbing

    async def _send(self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any) -> Any:
        """The JSON answer; None for a 404 when ``missing_ok`` (phoenixd's answer for an unknown hash)."""
        response = await http.send(self._http, KIND, method, self._settings.base_url + path, **kwargs)
        if missing_ok and response.status_code == 404:
            return None
        error = _refusal(response)
        if error is not None:
            raise error
        return http.json_of(KIND, response)

    # -- receiving

    async def create_invoice(
        self,
        *,
        amount_msat: int,
        description: str | None = None,
        description_hash: bytes | None = None,
        expiry_seconds: int = 3600,
    ) -> CreatedInvoice:
        sats = whole_sats(KIND, amount_msat, "an invoice amount")
        if isinstance(expiry_seconds, bool) or not isinstance(expiry_seconds, int) or expiry_seconds <= 0:
            raise ValueError("expiry_seconds must be a positive number of seconds")
        form = {"amountSat": str(sats), "expirySeconds": str(expiry_seconds), "externalId": EXTERNAL_ID}
        if (
            description_hash is None
            and description is not None
            and utf16_length(description) > MAX_DESCRIPTION
        ):
            description_hash = hashlib.sha256(description.encode()).digest()  # the invoice commits to it
        if description_hash is not None:
            if len(description_hash) != 32:
                raise ValueError("description_hash must be 32 bytes")
            form["descriptionHash"] = description_hash.hex()
            description = None
        else:
            description = description or ""
            form["description"] = description
        body = await self._send("POST", "/createinvoice", data=form)
        payment_hash = http.field(KIND, body, "paymentHash", str)
        payment_request = http.field(KIND, body, "serialized", str)
        if body.get("amountSat") != sats or isinstance(body.get("amountSat"), bool):
            raise LightningProtocolError(
                f"reported an invoice for {body.get('amountSat')!r} sat instead of {sats}", backend=KIND
            )
        return verify.created_invoice(
            KIND,
            payment_request,
            amount_msat=amount_msat,
            description=description,
            description_hash=description_hash,
            network=self._network,
            payment_hash=payment_hash,
        )

    async def lookup_invoice(
        self, payment_hash: str, *, backend_invoice_id: str | None = None
    ) -> InvoiceState:
        if not verify.is_hash(payment_hash):
            return InvoiceState(payment_hash=payment_hash, status=InvoiceStatus.UNKNOWN)
        wanted = payment_hash.lower()
        body = await self._send("GET", f"/payments/incoming/{wanted}", missing_ok=True)
        if body is None:
            return InvoiceState(payment_hash=payment_hash, status=InvoiceStatus.UNKNOWN)
        reported = http.field(KIND, body, "paymentHash", str)
        if reported.lower() != wanted:
            raise LightningProtocolError("answered about another payment hash", backend=KIND)
        if http.field(KIND, body, "isPaid", bool):
            return InvoiceState(
                payment_hash=payment_hash,
                status=InvoiceStatus.SETTLED,
                amount_received_msat=_received_msat(body),
                settled_at=_millis(http.field(KIND, body, "completedAt", int)),
            )
        expired = body.get("isExpired", False) is True
        return InvoiceState(
            payment_hash=payment_hash, status=InvoiceStatus.CANCELED if expired else InvoiceStatus.OPEN
        )

    def settlements(self, after_index: int = 0) -> AsyncIterator[Settlement]:
        """The payments received in the last hour, then each one phoenixd pushes (with what the
        look-up says the payer paid; the event's amount, after liquidity fees, if it cannot tell)."""
        return ws.settlements(
            KIND, self._open_websocket, self._recent_settlements, _received_event, self.lookup_invoice
        )

    async def _recent_settlements(self) -> list[Settlement]:
        """The gateway's invoices paid in the last hour, oldest first."""
        since = int(time.time() * 1000) - REPLAY_WINDOW_MS
        found: list[Settlement] = []
        for page in range(REPLAY_PAGES):
            params = {
                "from": str(since),
                "limit": str(PAGE),
                "offset": str(page * PAGE),
                "externalId": EXTERNAL_ID,
            }
            body = await self._send("GET", "/payments/incoming", params=params)
            if not isinstance(body, list):
                raise LightningProtocolError("answered the payments list with something else", backend=KIND)
            for item in body:
                hash_ = http.field(KIND, item, "paymentHash", str).lower()
                if verify.is_hash(hash_) and item.get("isPaid") is True:
                    completed = _millis(http.field(KIND, item, "completedAt", int))
                    found.append(Settlement(hash_, _received_msat(item), completed, 0))
            if len(body) < PAGE:
                break
        found.reverse()
        return found

    async def _open_websocket(self) -> ClientConnection:
        token = base64.b64encode(f":{self._settings.password}".encode()).decode()
        return await ws.open_socket(
            KIND,
            self._settings.ws_url,
            seconds=self._settings.timeout,
            ping_interval=PING_INTERVAL,
            tls=self._settings.tls_context,
            guard=self._guard,
            headers={"Authorization": f"Basic {token}"},
        )

    # -- paying

    async def pay_invoice(
        self, bolt11_invoice: str, *, amount_msat: int | None = None, max_fee_msat: int = 0
    ) -> PaymentResult:
        """Pay once. phoenixd picks the routing fee itself (its trampoline fee schedule):
        ``max_fee_msat`` cannot be passed on, and the result reports the fee paid."""
        try:
            decoded = bolt11.decode(bolt11_invoice.strip(), require_payment_secret=False)
        except bolt11.Bolt11Error as exc:
            raise LightningRejected(f"cannot pay an invalid invoice ({exc})", backend=KIND) from None
        payment_hash = decoded.payment_hash.hex()
        form = {"invoice": bolt11_invoice.strip()}
        if amount_msat is not None:
            form["amountSat"] = str(whole_sats(KIND, amount_msat, "a payment amount"))
        elif decoded.amount_msat is None:
            raise LightningRejected("the invoice has no amount: give amount_msat", backend=KIND)
        timeout = httpx.Timeout(self._settings.timeout, read=self._settings.pay_timeout)
        try:
            response = await self._http.post(
                self._settings.base_url + "/payinvoice", data=form, timeout=timeout
            )
        except http.NOT_SENT as exc:
            raise http.transport_error(KIND, exc) from None  # the request never left
        except httpx.ReadTimeout:  # phoenixd may still be sending: ask (never pay again)
            return await settled_or_pending(self.lookup_payment, payment_hash, "no answer within pay_timeout")
        except httpx.HTTPError as exc:
            return PaymentResult(
                PaymentStatus.UNKNOWN, payment_hash, error=f"the answer was lost ({type(exc).__name__})"
            )
        return await self._pay_result(response, payment_hash)

    async def _pay_result(self, response: httpx.Response, payment_hash: str) -> PaymentResult:
        code = response.status_code
        if code in (401, 403):
            raise await self._pay_refusal(code)
        if code == 400:  # phoenixd refused the request's parameters: nothing was sent
            said = _plain_text(response) or "bad request"
            return PaymentResult(PaymentStatus.FAILED, payment_hash, error=f"refused to pay: {said}")
        body = answer_of(response, payment_hash)
        if isinstance(body, PaymentResult):
            return body
        reported = body.get("paymentHash")
        if reported is not None and (not isinstance(reported, str) or reported.lower() != payment_hash):
            return PaymentResult(
                PaymentStatus.UNKNOWN, payment_hash, error="answered about another payment hash"
            )
        preimage = body.get("paymentPreimage")
        if verify.is_hash(preimage):
            matched = verify.preimage_of(payment_hash, preimage)
            if matched is None:
                return PaymentResult(
                    PaymentStatus.UNKNOWN, payment_hash, error="answered with a preimage of another payment"
                )
            fee = body.get("routingFeeSat")
            fee_msat = fee * 1000 if isinstance(fee, int) and not isinstance(fee, bool) and fee >= 0 else 0
            return PaymentResult(PaymentStatus.SETTLED, payment_hash, preimage=matched, fee_msat=fee_msat)
        reason = body.get("reason")
        if isinstance(reason, str) and preimage is None:
            return PaymentResult(PaymentStatus.FAILED, payment_hash, error=reason[:300] or "payment failed")
        return PaymentResult(
            PaymentStatus.UNKNOWN, payment_hash, error="answered without a preimage or a failure reason"
        )

    async def _pay_refusal(self, code: int) -> LightningError:
        """A refused payinvoice: the limited-access password (it may read) or a wrong password."""
        try:
            response = await self._http.get(self._settings.base_url + "/getinfo")
        except httpx.HTTPError:
            response = None
        if response is not None and response.status_code == 200:
            return LightningUnsupported(
                "the limited-access password cannot pay: use phoenixd's http-password to send payments",
                backend=KIND,
            )
        return LightningRejected(f"refused the credentials (HTTP {code})", backend=KIND)

    async def lookup_payment(self, payment_hash: str) -> PaymentResult:
        if not verify.is_hash(payment_hash):
            return PaymentResult(PaymentStatus.UNKNOWN, payment_hash)
        wanted = payment_hash.lower()
        body = await self._send("GET", f"/payments/outgoingbyhash/{wanted}", missing_ok=True)
        if body is None:
            return PaymentResult(PaymentStatus.UNKNOWN, payment_hash)
        reported = http.field(KIND, body, "paymentHash", str)
        if reported.lower() != wanted:
            raise LightningProtocolError("answered about another payment hash", backend=KIND)
        if http.field(KIND, body, "isPaid", bool):
            preimage = verify.preimage_of(wanted, http.field(KIND, body, "preimage", str))
            if preimage is None:
                raise LightningProtocolError("answered with a preimage of another payment", backend=KIND)
            fees = body.get("fees", 0)
            fee_msat = fees if isinstance(fees, int) and not isinstance(fees, bool) and fees >= 0 else 0
            return PaymentResult(PaymentStatus.SETTLED, payment_hash, preimage=preimage, fee_msat=fee_msat)
        if body.get("completedAt") is None:
            return PaymentResult(PaymentStatus.PENDING, payment_hash)
        return PaymentResult(PaymentStatus.FAILED, payment_hash, error="phoenixd reports the payment failed")

    # -- the node

    async def node_info(self) -> NodeInfo:
        body = await self._send("GET", "/getinfo")
        node_id = http.field(KIND, body, "nodeId", str).lower()
        if not _PUBKEY.fullmatch(node_id):
            raise LightningProtocolError("answered with an invalid nodeId", backend=KIND)
        chain = http.field(KIND, body, "chain", str)
        version = body.get("version")
        alias = f"phoenixd {version}" if isinstance(version, str) and version else "phoenixd"
        return NodeInfo(
            pubkey=node_id, alias=alias[:64], network=network_named(chain) or chain.lower(), backend=KIND
        )

    async def close(self) -> None:
        await self._http.aclose()


def open_backend(connection: Connection, env: BackendEnv) -> PhoenixdBackend:
    """``phoenixd://:<password>@host:9740`` (see the module docstring for the parameters)."""
    return PhoenixdBackend(connection, network=env.network)
