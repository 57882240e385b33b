"""An LNbits wallet over LNbits' REST API, with settlements pushed on its wallet websocket.

Speaks the wallet API of LNbits 1.x (checked against 1.6.2: ``lnbits/core/views/payment_api.py``,
``wallet_api.py``, ``websocket_api.py``, ``core/services/notifications.py``), in **sats**, with
the wallet's key in the ``X-Api-Key`` header:

- ``POST /api/v1/payments`` ``{out: false, amount (sat), unit: "sat", memo | description_hash |
  unhashed_description (hex), expiry}`` → 201 with the payment (``payment_hash``, ``bolt11``,
  ``amount`` in msat, ``checking_id``, ``status``); LNbits' own refusals are HTTP 520
  ``{detail, status}``;
- ``GET /api/v1/payments/{payment_hash}`` → ``{paid, status, preimage, details}`` (``details`` is
  the wallet's own payment: ``amount`` msat, positive incoming, negative outgoing; ``fee`` msat;
  ``status`` ``pending``/``success``/``failed``; ``updated_at``), 404 when the wallet has no
  payment with that hash. Without a valid key LNbits still answers, without ``details``: such an
  answer is a refusal of the key, never taken as a state;
- ``GET /api/v1/payments?status=success&amount[gt]=0&sortby=updated_at`` → the latest settled
  incoming payments (the catch-up when the settlement stream opens);
- ``POST /api/v1/payments`` ``{out: true, bolt11}`` (admin key only: an invoice key gets 403) →
  201 with the outgoing payment (``status`` ``success`` with its ``preimage``, or ``pending``), or
  520 ``{detail, status}`` where ``status`` says ``failed``, ``pending`` or ``success``;
- ``GET /api/v1/wallet`` → ``{name, balance (msat)}`` (404 "Wallet not found." for a wrong key);
- ``ws(s)://…/api/v1/ws/{key}`` — LNbits sends ``{"wallet_balance", "payment": {…}}`` on the
  channels named by the wallet's invoice and admin keys for each payment of the wallet. Anyone who
  knows a key can post text to its channel, so a push is only a hint: each one is confirmed with
  the authenticated look-up before it becomes a :class:`Settlement`. Nothing is numbered
  (``resumable=False``): a new stream first replays the latest settled payments, and the caller
  polls the open invoices after a drop.

Connection URL: ``lnbits://host[:port][/path-prefix]?key=<32 hex>`` with the optional parameters
``tls=0`` (plain HTTP; https is the default, on port 443, plain HTTP on LNbits' port 5000),
``cert=`` (pin the server's certificate), ``timeout=`` (seconds per request, 15) and
``pay_timeout=`` (seconds to wait for a payment's answer, 60). The invoice key receives; paying
needs the admin key. LNbits does not take a fee limit per payment: it reserves its own
(``lnbits_reserve_fee_min`` / ``_percent``), so ``max_fee_msat`` is not passed on and the result
reports the fee paid. LNbits does not tell its network or node id: invoices are checked against the
gateway's configured network, and :meth:`LNbitsBackend.node_info` has no pubkey.
"""

from __future__ import annotations

import dataclasses
import re
import ssl
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
    LightningProtocolError,
    LightningRejected,
    LightningUnavailable,
    LightningUnsupported,
    NodeInfo,
    PaymentResult,
    PaymentStatus,
    Settlement,
)
from boltgate.lightning.connection import Connection, ConnectionUrlError
from boltgate.lightning.paying import answer_of, settled_or_pending
from boltgate.lightning.registry import BackendEnv

KIND = "lnbits"
HTTPS_PORT = 443
HTTP_PORT = 5000  # LNbits' own default when it is reached without a reverse proxy
MAX_MEMO_BYTES = 639  # the longest description a BOLT11 invoice can carry; longer ones are hashed
CATCH_UP = 50  # settled payments replayed when a settlement stream opens
PING_INTERVAL = 15.0
PARAMS = frozenset({"key", "tls", "cert", "timeout", "pay_timeout"})
_KEY = re.compile(r"[0-9a-f]{32}")
_ADMIN_KEY_NEEDED = "this connection's key can only receive: paying needs the wallet's admin key"


@dataclasses.dataclass(frozen=True)
class _Settings:
    base_url: str
    ws_url: str = dataclasses.field(repr=False)  # names the key
    key: str = dataclasses.field(repr=False)
    timeout: float
    pay_timeout: float
    ssl: ssl.SSLContext | bool  # False: plain HTTP


def settings_of(connection: Connection) -> _Settings:
    """The URL checked and read (:class:`ConnectionUrlError` naming what is wrong, never the key)."""
    connection.check_params(PARAMS)
    if connection.username or connection.password is not None:
        raise ConnectionUrlError(f"{KIND}: the wallet key goes in ?key=, not before the host")
    key = (connection.param("key") or "").strip().lower()
    if not key:
        raise ConnectionUrlError(
            f"{KIND}: the URL needs the wallet's key: lnbits://host?key=<invoice or admin key>"
        )
    if not _KEY.fullmatch(key):
        raise ConnectionUrlError(f"{KIND}: key must be a wallet's API key (32 hex characters)")
    if not connection.host:
        raise ConnectionUrlError(f"{KIND}: the URL needs a host: lnbits://host?key=<invoice or admin key>")
    if connection.port == 0:
        raise ConnectionUrlError(f"{KIND}: port 0 is not a port LNbits can listen on")
    if connection.param("cert") is not None and not connection.tls:
        raise ConnectionUrlError(f"{KIND}: cert= pins a TLS certificate, so it cannot go with tls=0")
    base = connection.base_url(HTTPS_PORT if connection.tls else HTTP_PORT)
    base += quote(connection.path.rstrip("/"), safe="/")
    return _Settings(
        base_url=base,
        ws_url=f"{ws.url_of(base)}/api/v1/ws/{key}",
        key=key,
        timeout=connection.timeout,
        pay_timeout=connection.seconds("pay_timeout", 60.0, most=600),
        ssl=http.verify_of(connection),
    )


def _detail(response: httpx.Response) -> tuple[str, str | None]:
    """LNbits' ``detail`` (shortened) and ``status`` of an error answer, when it gave them."""
    body = http.error_body(response)
    if not isinstance(body, dict):
        return "", None
    detail, status = body.get("detail"), body.get("status")
    return (detail[:200] if isinstance(detail, str) else ""), (status if isinstance(status, str) else None)


def _refusal(response: httpx.Response) -> Exception | None:
    """The error for a non-2xx answer: a wrong key and LNbits' own 520 refusals said plainly."""
    code = response.status_code
    detail, status = _detail(response)
    if code == 404 and detail == "Wallet not found.":
        return LightningRejected("no wallet has this key (HTTP 404: Wallet not found.)", backend=KIND)
    if code == 520 and status == "failed":  # LNbits refused: limits, a wallet that cannot receive…
        return LightningRejected(f"refused the request (HTTP 520: {detail or 'failed'})", backend=KIND)
    return http.status_error(KIND, response)


def _int(body: Any, name: str) -> int:
    return int(http.field(KIND, body, name, int))


def _time(payment: dict[str, Any]) -> datetime:
    """When LNbits last changed the payment (``updated_at``; ``time`` in older answers), in UTC."""
    raw = payment.get("updated_at") or payment.get("time")
    if not isinstance(raw, str):
        raise LightningProtocolError("answered a payment without a valid 'updated_at'", backend=KIND)
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise LightningProtocolError(
            "answered a payment without a valid 'updated_at'", backend=KIND
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _pushed(message: ws.Message) -> ws.Push | None:
    """The payment hash of a pushed incoming payment that LNbits says is paid, else None (the
    hash alone: anyone may post to the channel, so only the look-up tells what was paid).

    Other messages (outgoing payments, text posted to the channel) are not ours to judge."""
    try:
        event = orjson.loads(message)
    except orjson.JSONDecodeError:
        return None
    payment = event.get("payment") if isinstance(event, dict) else None
    if not isinstance(payment, dict) or payment.get("status") != "success":
        return None
    amount, payment_hash = payment.get("amount"), payment.get("payment_hash")
    if (
        not isinstance(amount, int)
        or isinstance(amount, bool)
        or amount <= 0
        or not verify.is_hash(payment_hash)
    ):
        return None
    return ws.Push(str(payment_hash).lower())


class LNbitsBackend:
    """An LNbits wallet: receive with its invoice or admin key, pay with its admin key."""

    name = KIND
    resumable = False

    def __init__(self, connection: Connection, *, network: str) -> None:
        self._settings = settings_of(connection)
        self._redacted = connection.redacted()
        self._network = network
        self._http = http.client(connection, headers={"X-Api-Key": self._settings.key})
        self._guard = connection.guard

    def __repr__(self) -> str:
        return f"LNbitsBackend({self._redacted})"

    async def _send(self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any) -> Any:
        """The JSON answer; None for 404 when ``missing_ok`` (an unknown payment hash)."""
        response = await http.send(self._http, KIND, method, self._settings.base_url + path, **kwargs)
        if (
            missing_ok
            and response.status_code == 404
            and _detail(response)[0] not in ("", "Wallet not found.")
        ):
            return None  # LNbits' own "Payment does not exist." (a 404 page of a proxy is an error)
        error = _refusal(response)
        if error is not None:
            raise error
        return http.json_of(KIND, response)

    async def _payment(self, payment_hash: str) -> dict[str, Any] | None:
        """This wallet's payment with ``payment_hash`` (``details`` of the look-up), or None."""
        body = await self._send("GET", f"/api/v1/payments/{payment_hash}", missing_ok=True)
        if body is None:
            return None
        if not isinstance(body, dict):
            raise LightningProtocolError("answered a look-up that is not an object", backend=KIND)
        details = body.get("details")
        if details is None and "paid" in body:
            raise LightningRejected(
                "answered without the payment's details: the key is not this wallet's", backend=KIND
            )
        if not isinstance(details, dict):
            raise LightningProtocolError("answered a look-up without valid 'details'", backend=KIND)
        if str(http.field(KIND, details, "payment_hash", str)).lower() != payment_hash:
            raise LightningProtocolError("answered about another payment hash", backend=KIND)
        return details

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
        request: dict[str, Any] = {"out": False, "amount": sats, "unit": "sat", "expiry": expiry_seconds}
        if description_hash is not None:
            if len(description_hash) != 32:
                raise ValueError("description_hash must be 32 bytes")
            request["description_hash"] = description_hash.hex()
            description = None
        elif description and len(description.encode()) > MAX_MEMO_BYTES:
            request["unhashed_description"] = description.encode().hex()  # the invoice commits to its hash
        elif description:
            request["memo"] = description
        else:
            description = None  # LNbits writes its site title where no memo is given
        body = await self._send("POST", "/api/v1/payments", json=request)
        payment_hash = str(http.field(KIND, body, "payment_hash", str)).lower()
        payment_request = body.get("bolt11") or body.get("payment_request")
        if not isinstance(payment_request, str):
            raise LightningProtocolError("answered without a valid 'bolt11'", backend=KIND)
        if _int(body, "amount") != amount_msat:
            raise LightningProtocolError(
                f"reported an invoice for {body.get('amount')!r} msat instead of {amount_msat}", backend=KIND
            )
        checking_id = body.get("checking_id")
        return verify.created_invoice(
            KIND,
            payment_request,
            amount_msat=amount_msat,
            description=description,
            description_hash=description_hash,
            network=self._network,
            payment_hash=payment_hash,
            backend_invoice_id=checking_id if isinstance(checking_id, str) else None,
        )

    async def lookup_invoice(
        self, payment_hash: str, *, backend_invoice_id: str | None = None
    ) -> InvoiceState:
        """The invoice by its payment hash (LNbits finds a wallet's payments by hash or checking id)."""
        if not verify.is_hash(payment_hash):
            return InvoiceState(payment_hash=payment_hash, status=InvoiceStatus.UNKNOWN)
        payment = await self._payment(payment_hash.lower())
        if payment is None or _int(payment, "amount") <= 0:  # none, or only an outgoing payment
            return InvoiceState(payment_hash=payment_hash, status=InvoiceStatus.UNKNOWN)
        status = payment.get("status")
        if status == "success":
            return InvoiceState(
                payment_hash=payment_hash,
                status=InvoiceStatus.SETTLED,
                amount_received_msat=_int(payment, "amount"),
                settled_at=_time(payment),
            )
        if status == "failed":  # LNbits marks expired invoices failed
            return InvoiceState(payment_hash=payment_hash, status=InvoiceStatus.CANCELED)
        if status != "pending":
            raise LightningProtocolError(
                f"answered an unknown payment status {str(status)[:20]!r}", backend=KIND
            )
        return InvoiceState(payment_hash=payment_hash, status=self._open_or_expired(payment))

    @staticmethod
    def _open_or_expired(payment: dict[str, Any]) -> InvoiceStatus:
        invoice = payment.get("bolt11")
        try:
            decoded = bolt11.decode(str(invoice), require_payment_secret=False)
        except bolt11.Bolt11Error:
            return InvoiceStatus.OPEN
        expired = decoded.expires_at <= datetime.now(UTC).timestamp()
        return InvoiceStatus.CANCELED if expired else InvoiceStatus.OPEN

    def settlements(self, after_index: int = 0) -> AsyncIterator[Settlement]:
        """The latest settled payments, then each new one as LNbits pushes it (and confirms it)."""
        return ws.settlements(KIND, self._open_socket, self._recent_settlements, _pushed, self.lookup_invoice)

    async def _recent_settlements(self) -> list[Settlement]:
        query = {
            "status": "success",
            "amount[gt]": "0",
            "sortby": "updated_at",
            "direction": "desc",
            "limit": str(CATCH_UP),
        }
        body = await self._send("GET", "/api/v1/payments", params=query)
        if not isinstance(body, list):
            raise LightningProtocolError("answered a payment list that is not a list", backend=KIND)
        settled = []
        for payment in reversed(body):
            payment_hash = http.field(KIND, payment, "payment_hash", str).lower()
            amount = _int(payment, "amount")
            if payment.get("status") == "success" and amount > 0 and verify.is_hash(payment_hash):
                settled.append(Settlement(payment_hash, amount, _time(payment), 0))
        return settled

    async def _open_socket(self) -> ClientConnection:
        """The wallet's channel, once the key is known to be a wallet's."""
        await self._send("GET", "/api/v1/wallet")  # a wrong key would listen on a silent channel
        return await ws.open_socket(
            KIND,
            self._settings.ws_url,  # names the key: never shown
            seconds=self._settings.timeout,
            ping_interval=PING_INTERVAL,
            tls=self._settings.ssl,
            guard=self._guard,
            refused=lambda answer: (
                _refusal(answer) or LightningUnavailable("refused the websocket", backend=KIND)
            ),
        )

    # -- paying

    async def pay_invoice(
        self, bolt11_invoice: str, *, amount_msat: int | None = None, max_fee_msat: int = 0
    ) -> PaymentResult:
        """Pay once, with the admin key. LNbits applies its own fee reserve (module docstring)."""
        invoice = bolt11_invoice.strip()
        try:
            decoded = bolt11.decode(invoice, require_payment_secret=False)
        except bolt11.Bolt11Error as exc:
            raise LightningRejected(f"cannot pay an invalid invoice ({exc})", backend=KIND) from None
        if decoded.amount_msat is None:
            raise LightningUnsupported("LNbits pays only invoices that carry an amount", backend=KIND)
        if amount_msat is not None and amount_msat != decoded.amount_msat:
            raise LightningUnsupported("LNbits pays an invoice's own amount, not another", backend=KIND)
        payment_hash = decoded.payment_hash.hex()
        timeout = httpx.Timeout(self._settings.timeout, read=self._settings.pay_timeout)
        try:
            response = await self._http.post(
                self._settings.base_url + "/api/v1/payments",
                json={"out": True, "bolt11": invoice},
                timeout=timeout,
            )
        except http.NOT_SENT as exc:
            raise http.transport_error(KIND, exc) from None  # the request never left
        except httpx.HTTPError as exc:  # sent, and the answer was lost: never pay again blindly
            why = f"the answer was lost ({type(exc).__name__}): look the payment up"
            return PaymentResult(PaymentStatus.UNKNOWN, payment_hash, error=why)
        return await self._pay_result(response, payment_hash)

    async def _pay_result(self, response: httpx.Response, payment_hash: str) -> PaymentResult:
        code = response.status_code
        detail, status = _detail(response)
        if code == 403 and "admin" in detail.lower():
            raise LightningUnsupported(_ADMIN_KEY_NEEDED, backend=KIND)
        if code in (401, 403, 404, 429):  # refused before anything was paid
            raise _refusal(response) or LightningRejected(f"refused (HTTP {code})", backend=KIND)
        if code in (400, 422):
            return PaymentResult(
                PaymentStatus.FAILED, payment_hash, error=f"refused to pay: {detail or 'bad request'}"
            )
        if code == 520 and status in ("failed", "pending"):
            state = PaymentStatus.FAILED if status == "failed" else PaymentStatus.PENDING
            return PaymentResult(state, payment_hash, error=detail or status)
        if code == 520 and status == "success":  # "already paid": this wallet's payment has the preimage
            return await settled_or_pending(
                self.lookup_payment, payment_hash, "LNbits says it was paid already"
            )
        body = answer_of(response, payment_hash)
        if isinstance(body, PaymentResult):
            return body
        if str(body.get("payment_hash", "")).lower() != payment_hash:
            return PaymentResult(
                PaymentStatus.UNKNOWN, payment_hash, error="answered with a payment that is not this one"
            )
        return self._outgoing(body, payment_hash)

    @staticmethod
    def _outgoing(payment: dict[str, Any], payment_hash: str) -> PaymentResult:
        """An outgoing payment of LNbits' answers as a result (``fee`` in msat, negative)."""
        status = payment.get("status")
        fee = payment.get("fee", 0)
        fee_msat = abs(fee) if isinstance(fee, int) and not isinstance(fee, bool) else 0
        if status == "success":
            preimage = verify.preimage_of(payment_hash, payment.get("preimage"))
            if preimage is None:
                return PaymentResult(
                    PaymentStatus.UNKNOWN, payment_hash, error="settled without a valid preimage"
                )
            return PaymentResult(PaymentStatus.SETTLED, payment_hash, preimage=preimage, fee_msat=fee_msat)
        if status == "pending":
            return PaymentResult(PaymentStatus.PENDING, payment_hash)
        if status == "failed":
            return PaymentResult(
                PaymentStatus.FAILED, payment_hash, error="LNbits reports the payment failed"
            )
        return PaymentResult(PaymentStatus.UNKNOWN, payment_hash, error="answered an unknown payment status")

    async def lookup_payment(self, payment_hash: str) -> PaymentResult:
        if not verify.is_hash(payment_hash):
            return PaymentResult(PaymentStatus.UNKNOWN, payment_hash)
        wanted = payment_hash.lower()
        payment = await self._payment(wanted)
        if payment is None or _int(payment, "amount") >= 0:  # none, or only an incoming invoice
            return PaymentResult(PaymentStatus.UNKNOWN, payment_hash)
        result = self._outgoing(payment, wanted)
        if result.status is PaymentStatus.UNKNOWN:
            raise LightningProtocolError(result.error or "answered an unusable payment", backend=KIND)
        return result

    # -- the wallet

    async def node_info(self) -> NodeInfo:
        """The wallet's name; LNbits does not show its node's id or network to a wallet key."""
        body = await self._send("GET", "/api/v1/wallet")
        name = http.field(KIND, body, "name", str)
        return NodeInfo(pubkey="", alias=f"LNbits wallet {name}"[:64], network=self._network, backend=KIND)

    async def close(self) -> None:
        await self._http.aclose()


def open_backend(connection: Connection, env: BackendEnv) -> LNbitsBackend:
    """``lnbits://host?key=<invoice or admin key>`` (see the module docstring for the parameters)."""
    return LNbitsBackend(connection, network=env.network)
