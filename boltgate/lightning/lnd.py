"""LND through its REST API (the grpc-gateway of lnd 0.15 and later; ``lnrpc/lightning.yaml``,
``lnrpc/routerrpc/router.yaml``).

Every request carries the macaroon as ``Grpc-Metadata-macaroon: <hex>`` and speaks TLS pinned to
the node's ``tls.cert`` (:mod:`boltgate.lightning.http`). The JSON is protobuf's: 64-bit numbers
are strings, ``bytes`` fields are base64 (base64url in URL paths). Endpoints:

- ``POST /v1/invoices`` (AddInvoice: ``value_msat``, ``memo`` or ``description_hash``, ``expiry``);
  the invoice returned is decoded and checked (:func:`boltgate.lightning.verify.created_invoice`);
- ``GET /v1/invoice/{r_hash_str}`` (LookupInvoice by hex hash): ``OPEN``, ``ACCEPTED`` (a held
  HTLC, not yet paid: open), ``SETTLED``, ``CANCELED``; "unable to locate invoice" is unknown;
- ``GET /v1/invoices/subscribe?settle_index=N`` (SubscribeInvoices, newline-delimited
  ``{"result": Invoice}``): settlements, resumed by LND's settle index. LND sends no backlog for
  an index of 0, so a stream from 0 starts with the settled invoices of ``GET /v1/invoices``.
  The gateway writes nothing, not even the response headers, until there is an event: after
  ``heartbeat`` idle seconds the node is asked for a sign of life and the subscription is made
  again from the last index (nothing is lost or replayed); no answer raises, so a dead
  connection is noticed;
- ``POST /v2/router/send`` (SendPaymentV2, streamed ``{"result": Payment}``) pays once; an error
  answer (``invoice is already paid``, ``payment is in transition``…) is never taken for a
  failure before ``GET /v2/router/track/{hash}`` (TrackPaymentV2) has told what the node knows;
- ``GET /v1/getinfo`` (``identity_pubkey``, ``alias``, ``chains[].network``).

The macaroon may be given as hex, base64url or a file path, the certificate as a path, PEM or
base64url DER; a merchant's own URL (one with a network guard) must carry both itself, since a
path would name a file of the gateway's host.

LND answers its own errors as ``{"code": <gRPC code>, "message": …}`` (``{"error": {…}}`` on
streams) with the HTTP status of the gRPC code: most are code 2, HTTP 500, including a macaroon
it refuses, which is therefore told apart by its message.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import re
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from boltgate.lightning import http, verify
from boltgate.lightning.base import (
    CreatedInvoice,
    InvoiceState,
    InvoiceStatus,
    LightningError,
    LightningProtocolError,
    LightningRejected,
    LightningUnavailable,
    LightningUnsupported,
    NodeInfo,
    PaymentResult,
    PaymentStatus,
    Settlement,
    network_named,
)
from boltgate.lightning.connection import Connection, ConnectionUrlError
from boltgate.lightning.paying import invoice_to_pay
from boltgate.lightning.registry import BackendEnv

KIND = "lnd-rest"
DEFAULT_PORT = 8080
PARAMS = frozenset({"macaroon", "cert", "tls", "timeout", "pay_timeout", "heartbeat", "private"})
MAX_MEMO = 1024  # bytes: LND refuses longer memos
MAX_EXPIRY = 365 * 24 * 3600  # LND refuses invoices that expire later than a year
LIST_PAGE = 500  # invoices per ListInvoices page while catching up from settle index 0
_HEX = re.compile(r"[0-9a-fA-F]+")
_B64 = re.compile(r"[A-Za-z0-9_\-+/]+=*")
_STD_TO_URL = str.maketrans("+/", "-_")
_URL_TO_STD = str.maketrans("-_", "+/")
_CREDENTIAL_WORDS = ("verification failed", "permission denied", "macaroon")
_UNKNOWN_INVOICE = ("unable to locate invoice", "there are no existing invoices")


class _Idle(Exception):
    """The settlement stream has been quiet for ``heartbeat`` seconds."""


def load_macaroon(value: str | None) -> str:
    """The hex of an LND macaroon given as hex, base64(url) or a file path (as LND wrote it)."""
    if value is None or not value.strip():
        raise ConnectionUrlError(f"{KIND}: the URL needs macaroon= (hex, base64url or a .macaroon file path)")
    text = value.strip()
    candidates: list[bytes] = []
    if text.startswith(("/", "~", ".")):
        try:
            data = Path(text).expanduser().read_bytes()
        except OSError as exc:
            raise ConnectionUrlError(f"{KIND}: cannot read the macaroon file ({exc.strerror})") from None
        candidates.append(data)
        text = data.strip().decode("ascii", "replace")  # some keep the hex in a text file
    if _HEX.fullmatch(text) and len(text) % 2 == 0:
        candidates.append(bytes.fromhex(text))
    text = text.replace(" ", "+")  # a query string turns the "+" of standard base64 into a space
    if _B64.fullmatch(text):
        with contextlib.suppress(binascii.Error, ValueError):
            candidates.append(base64.urlsafe_b64decode(text.translate(_STD_TO_URL) + "=" * (-len(text) % 4)))
    for raw in candidates:
        if _is_macaroon(raw):
            return raw.hex()
    raise ConnectionUrlError(
        f"{KIND}: macaroon is not an LND macaroon (give its hex, base64url, or the path of the file)"
    )


def _is_macaroon(raw: bytes) -> bool:
    """LND's macaroons are in the binary format of version 2, whose first byte is 2."""
    return len(raw) >= 16 and raw[0] == 2


def _int(value: Any, name: str) -> int:
    """A protobuf 64-bit integer (a JSON string) or a plain JSON number, not negative."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit() and len(value) <= 20:
        return int(value)
    raise LightningProtocolError(f"answered without a valid {name!r}", backend=KIND)


def _bytes(value: Any, name: str) -> bytes:
    if not isinstance(value, str):
        raise LightningProtocolError(f"answered without a valid {name!r}", backend=KIND)
    try:
        return base64.b64decode(value.translate(_URL_TO_STD) + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise LightningProtocolError(f"answered a {name!r} that is not base64", backend=KIND) from None


def _when(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _status_of(response: httpx.Response) -> tuple[int | None, str]:
    """The gRPC code and message of an LND error answer (unary or stream form)."""
    body = http.error_body(response)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    if not isinstance(body, dict):
        return None, ""
    code = body.get("code")
    message = body.get("message")
    return (
        code if isinstance(code, int) and not isinstance(code, bool) else None,
        message[:200] if isinstance(message, str) else "",
    )


class LndRest:
    """One LND node over REST (see the module docstring)."""

    name = KIND
    resumable = True

    def __init__(self, connection: Connection, env: BackendEnv) -> None:
        """Opened from its connection URL (see :func:`open_backend`)."""
        connection.check_params(PARAMS)
        if connection.guard is not None:  # a merchant's URL: nothing may be read from the host
            for name in ("macaroon", "cert"):
                if (connection.param(name) or "").strip().startswith(("/", "~", ".")):
                    raise ConnectionUrlError(f"{KIND}: {name} must be given itself here, not as a file path")
        self._macaroon = load_macaroon(connection.param("macaroon"))
        self._base = connection.base_url(DEFAULT_PORT) + connection.path.rstrip("/")
        self._private = connection.flag("private", False)
        pay_timeout = connection.seconds("pay_timeout", 60, least=1, most=3600)
        if pay_timeout != int(pay_timeout):
            raise ConnectionUrlError(f"{KIND}: pay_timeout must be a whole number of seconds")
        self._pay_timeout = int(pay_timeout)
        self._heartbeat = connection.seconds("heartbeat", 60.0, least=0.1, most=3600)
        self._timeout = connection.timeout
        self._network = env.network
        self._http = http.client(connection, headers={"Grpc-Metadata-macaroon": self._macaroon})

    def __repr__(self) -> str:
        return f"LndRest({self._base.split('://', 1)[-1]})"

    # -- requests

    def _said(self, response: httpx.Response) -> tuple[int | None, str]:
        """The gRPC code and message of an error answer (withheld if it repeats the macaroon)."""
        if self._macaroon in response.text.lower():
            return None, ""
        return _status_of(response)

    def _refusal(self, response: httpx.Response, *, lacking: str | None = None) -> LightningError | None:
        """The error when the answer refuses the macaroon, else None. ``lacking``: the permission
        the call needs, when a macaroon without it means the backend cannot do this at all."""
        _code, message = self._said(response)
        said = message.lower()
        if response.status_code not in (401, 403) and not any(w in said for w in _CREDENTIAL_WORDS):
            return None
        if lacking and "permission denied" in said:
            return LightningUnsupported(f"the macaroon does not allow this (needs {lacking})", backend=KIND)
        return LightningRejected(
            f"refused the macaroon ({message or f'HTTP {response.status_code}'})", backend=KIND
        )

    def _error(self, response: httpx.Response, *, lacking: str | None = None) -> LightningError:
        """The error of a non-2xx answer."""
        refusal = self._refusal(response, lacking=lacking)
        if refusal is not None:
            return refusal
        if self._macaroon in response.text.lower():  # never repeat an answer that holds the secret
            response = httpx.Response(response.status_code)
        error = http.status_error(KIND, response)
        if isinstance(error, LightningError):
            return error
        return LightningProtocolError(f"answered HTTP {response.status_code}", backend=KIND)

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await http.send(self._http, KIND, method, self._base + path, **kwargs)

    async def _call(self, method: str, path: str, *, lacking: str | None = None, **kwargs: Any) -> Any:
        response = await self._send(method, path, **kwargs)
        if not 200 <= response.status_code < 300:
            raise self._error(response, lacking=lacking)
        return http.json_of(KIND, response)

    async def _results(self, response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
        """The ``result`` objects of a grpc-gateway stream, one JSON object a line."""
        buffer = b""
        async for chunk in response.aiter_bytes():
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    yield self._result(line)
            if len(buffer) > http.MAX_BODY:
                raise LightningProtocolError("streamed an oversized message", backend=KIND)
        if buffer.strip():
            yield self._result(buffer)

    def _result(self, line: bytes) -> dict[str, Any]:
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise LightningProtocolError("streamed a message that is not JSON", backend=KIND) from None
        if isinstance(message, dict) and isinstance(message.get("result"), dict):
            result: dict[str, Any] = message["result"]
            return result
        if isinstance(message, dict) and isinstance(message.get("error"), dict):
            said = message["error"].get("message")
            said = said[:200] if isinstance(said, str) else "no message"
            raise LightningUnavailable(f"ended the stream with an error ({said})", backend=KIND)
        raise LightningProtocolError("streamed a message without result or error", backend=KIND)

    # -- receiving

    async def create_invoice(
        self,
        *,
        amount_msat: int,
        description: str | None = None,
        description_hash: bytes | None = None,
        expiry_seconds: int = 3600,
    ) -> CreatedInvoice:
        if amount_msat <= 0:
            raise LightningUnsupported("invoices need a positive amount", backend=KIND)
        if not 0 < expiry_seconds <= MAX_EXPIRY:
            raise LightningUnsupported(f"LND takes expiries of 1 to {MAX_EXPIRY} seconds", backend=KIND)
        body: dict[str, Any] = {
            "value_msat": str(amount_msat),
            "expiry": str(expiry_seconds),
            "private": self._private,
        }
        if description_hash is not None:
            if len(description_hash) != 32:
                raise LightningUnsupported("a description hash is 32 bytes", backend=KIND)
            body["description_hash"] = base64.b64encode(description_hash).decode()
        else:
            memo = description or ""
            if len(memo.encode()) > MAX_MEMO:
                raise LightningUnsupported(f"LND takes descriptions of up to {MAX_MEMO} bytes", backend=KIND)
            body["memo"] = memo
        answer = await self._call("POST", "/v1/invoices", json=body)
        payment_hash = _bytes(http.field(KIND, answer, "r_hash", str), "r_hash")
        if len(payment_hash) != 32:
            raise LightningProtocolError("answered an r_hash that is not 32 bytes", backend=KIND)
        return verify.created_invoice(
            KIND,
            http.field(KIND, answer, "payment_request", str),
            amount_msat=amount_msat,
            description=description if description_hash is None else None,
            description_hash=description_hash,
            network=self._network,
            payment_hash=payment_hash.hex(),
        )

    async def lookup_invoice(
        self, payment_hash: str, *, backend_invoice_id: str | None = None
    ) -> InvoiceState:
        wanted = payment_hash.lower()
        if not verify.is_hash(wanted):
            return InvoiceState(payment_hash=payment_hash, status=InvoiceStatus.UNKNOWN)
        response = await self._send("GET", f"/v1/invoice/{wanted}")
        if self._invoice_unknown(response):
            return InvoiceState(payment_hash=payment_hash, status=InvoiceStatus.UNKNOWN)
        if not 200 <= response.status_code < 300:
            raise self._error(response)
        invoice = http.json_of(KIND, response)
        if _bytes(http.field(KIND, invoice, "r_hash", str), "r_hash").hex() != wanted:
            raise LightningProtocolError("answered with another invoice than the one asked", backend=KIND)
        state = http.field(KIND, invoice, "state", str)
        if state == "SETTLED":
            return InvoiceState(
                payment_hash=payment_hash,
                status=InvoiceStatus.SETTLED,
                amount_received_msat=_int(invoice.get("amt_paid_msat"), "amt_paid_msat"),
                settled_at=_when(_int(invoice.get("settle_date"), "settle_date")),
            )
        if state in ("OPEN", "ACCEPTED"):  # ACCEPTED: a hold invoice's HTLC is held, not yet paid
            return InvoiceState(payment_hash=payment_hash, status=InvoiceStatus.OPEN)
        if state == "CANCELED":
            return InvoiceState(payment_hash=payment_hash, status=InvoiceStatus.CANCELED)
        raise LightningProtocolError(f"answered an unknown invoice state {state[:32]!r}", backend=KIND)

    @staticmethod
    def _invoice_unknown(response: httpx.Response) -> bool:
        """Not found: gRPC NotFound (HTTP 404), or the plain error older LND answered (code 2)."""
        code, message = _status_of(response)
        if response.status_code == 404 and code == 5:
            return True
        return response.status_code >= 400 and message.lower() in _UNKNOWN_INVOICE

    def _settlement(self, invoice: dict[str, Any]) -> Settlement | None:
        """The settlement an Invoice message tells, None when it is not settled."""
        if invoice.get("state") != "SETTLED":
            return None
        return Settlement(
            payment_hash=_bytes(invoice.get("r_hash"), "r_hash").hex(),
            amount_received_msat=_int(invoice.get("amt_paid_msat"), "amt_paid_msat"),
            settled_at=_when(_int(invoice.get("settle_date"), "settle_date")),
            settle_index=_int(invoice.get("settle_index"), "settle_index"),
        )

    async def settlements(self, after_index: int = 0) -> AsyncIterator[Settlement]:
        cursor = after_index
        while True:
            if cursor == 0:  # LND has no backlog for 0: catch up from the list of invoices
                for settlement in await self._settled_so_far():
                    cursor = settlement.settle_index
                    yield settlement
            try:
                async with contextlib.aclosing(self._subscribe(cursor)) as stream:
                    async for settlement in stream:
                        cursor = settlement.settle_index
                        yield settlement
            except _Idle:
                await self._alive()

    async def _settled_so_far(self) -> list[Settlement]:
        found: list[Settlement] = []
        offset = 0
        while True:
            page = await self._call(
                "GET",
                "/v1/invoices",
                params={"index_offset": str(offset), "num_max_invoices": str(LIST_PAGE)},
            )
            invoices = http.field(KIND, page, "invoices", list)
            for invoice in invoices:
                if not isinstance(invoice, dict):
                    raise LightningProtocolError("listed an invoice that is not an object", backend=KIND)
                settlement = self._settlement(invoice)
                if settlement is not None and settlement.settle_index > 0:
                    found.append(settlement)
            if len(invoices) < LIST_PAGE:
                return sorted(found, key=lambda s: s.settle_index)
            following = _int(page.get("last_index_offset"), "last_index_offset")
            if following <= offset:
                raise LightningProtocolError("listed invoices without moving on", backend=KIND)
            offset = following

    async def _subscribe(self, cursor: int) -> AsyncGenerator[Settlement, None]:
        params = {"settle_index": str(cursor)} if cursor else {}
        timeout = httpx.Timeout(self._timeout, read=self._heartbeat)
        try:
            async with self._http.stream(
                "GET", self._base + "/v1/invoices/subscribe", params=params, timeout=timeout
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise self._error(response)
                async for invoice in self._results(response):
                    settlement = self._settlement(invoice)
                    if settlement is not None and settlement.settle_index > cursor:
                        cursor = settlement.settle_index
                        yield settlement
        except httpx.ReadTimeout:
            raise _Idle from None
        except httpx.HTTPError as exc:
            raise http.transport_error(KIND, exc) from None
        raise LightningUnavailable("closed the settlement stream", backend=KIND)

    async def _alive(self) -> None:
        """A sign of life (the newest invoice), asked of a node whose stream has been quiet."""
        await self._call("GET", "/v1/invoices", params={"num_max_invoices": "1", "reversed": "true"})

    # -- paying

    async def pay_invoice(
        self, bolt11_invoice: str, *, amount_msat: int | None = None, max_fee_msat: int = 0
    ) -> PaymentResult:
        decoded = invoice_to_pay(bolt11_invoice, amount_msat)
        if isinstance(decoded, PaymentResult):
            return decoded
        payment_hash = decoded.payment_hash.hex()
        body: dict[str, Any] = {
            "payment_request": bolt11_invoice.strip(),
            "timeout_seconds": self._pay_timeout,
            "fee_limit_msat": str(max(0, max_fee_msat)),
            "no_inflight_updates": False,
        }
        if decoded.amount_msat is None:
            body["amt_msat"] = str(amount_msat)
        elif amount_msat is not None and amount_msat != decoded.amount_msat:
            return PaymentResult(
                PaymentStatus.FAILED, payment_hash, error="LND pays an invoice's own amount, no other"
            )
        seen: PaymentResult | None = None
        refusal: httpx.Response | None = None
        try:
            async with asyncio.timeout(self._pay_timeout + min(self._timeout, 5.0)):
                async with self._http.stream(
                    "POST",
                    self._base + "/v2/router/send",
                    json=body,
                    timeout=httpx.Timeout(self._timeout, read=None),
                ) as response:
                    if response.status_code != 200:
                        await response.aread()
                        refusal = response
                    else:
                        async for payment in self._results(response):
                            seen = self._payment(payment, payment_hash)
                            if seen.status in (PaymentStatus.SETTLED, PaymentStatus.FAILED):
                                return seen
        except TimeoutError:
            return seen or PaymentResult(PaymentStatus.UNKNOWN, payment_hash, error="no answer in time")
        except http.NOT_SENT as exc:  # the request never left: nothing was paid, say so
            raise http.transport_error(KIND, exc) from None
        except (httpx.HTTPError, LightningError) as exc:  # it may have been paid: never FAILED
            said = exc if isinstance(exc, LightningError) else http.transport_error(KIND, exc)
            return PaymentResult(PaymentStatus.UNKNOWN, payment_hash, error=str(said))
        if refusal is not None:
            return await self._refused(refusal, payment_hash)
        return PaymentResult(PaymentStatus.UNKNOWN, payment_hash, error="the payment stream ended early")

    async def _refused(self, response: httpx.Response, payment_hash: str) -> PaymentResult:
        """What an error answer to SendPaymentV2 means: only the node's record can tell."""
        refusal = self._refusal(response, lacking="offchain:write")
        if refusal is not None:
            raise refusal  # the macaroon was refused: nothing was sent
        code, message = self._said(response)
        if code is None:  # not LND's answer (a proxy in between): it may have gone through
            return PaymentResult(PaymentStatus.UNKNOWN, payment_hash, error=str(self._error(response)))
        try:
            known = await self.lookup_payment(payment_hash)
        except LightningError as exc:
            return PaymentResult(PaymentStatus.UNKNOWN, payment_hash, error=f"{message} ({exc})")
        if known.status is not PaymentStatus.UNKNOWN:
            return known
        if code == 6:  # AlreadyExists, yet no record: say nothing rather than something wrong
            return PaymentResult(PaymentStatus.UNKNOWN, payment_hash, error=message)
        # the node refused before recording the payment (expired invoice, no amount…)
        return PaymentResult(PaymentStatus.FAILED, payment_hash, error=message)

    def _payment(self, payment: dict[str, Any], payment_hash: str) -> PaymentResult:
        """A PaymentResult from an lnrpc.Payment (hashes and preimages are hex there)."""
        if payment.get("payment_hash") != payment_hash:
            raise LightningProtocolError("answered about another payment", backend=KIND)
        status = payment.get("status")
        if status == "SUCCEEDED":
            preimage = verify.preimage_of(payment_hash, payment.get("payment_preimage"))
            if preimage is None:
                raise LightningProtocolError("reported a preimage that does not match", backend=KIND)
            return PaymentResult(
                PaymentStatus.SETTLED,
                payment_hash,
                preimage=preimage,
                fee_msat=_int(payment.get("fee_msat"), "fee_msat"),
            )
        if status == "FAILED":
            reason = payment.get("failure_reason")
            return PaymentResult(
                PaymentStatus.FAILED,
                payment_hash,
                error=reason if isinstance(reason, str) and reason else "FAILURE_REASON_UNKNOWN",
            )
        if status in ("IN_FLIGHT", "INITIATED"):
            return PaymentResult(PaymentStatus.PENDING, payment_hash)
        if status == "UNKNOWN":
            return PaymentResult(PaymentStatus.UNKNOWN, payment_hash)
        raise LightningProtocolError("answered an unknown payment status", backend=KIND)

    async def lookup_payment(self, payment_hash: str) -> PaymentResult:
        wanted = payment_hash.lower()
        if not verify.is_hash(wanted):
            return PaymentResult(PaymentStatus.UNKNOWN, payment_hash)
        path = "/v2/router/track/" + base64.urlsafe_b64encode(bytes.fromhex(wanted)).decode()
        try:
            async with self._http.stream(
                "GET", self._base + path, params={"no_inflight_updates": "false"}
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    code, _message = _status_of(response)
                    if response.status_code == 404 and code == 5:  # "payment isn't initiated"
                        return PaymentResult(PaymentStatus.UNKNOWN, wanted)
                    raise self._error(response, lacking="offchain:read")
                async for payment in self._results(response):
                    return self._payment(payment, wanted)  # the first update is the current state
        except httpx.HTTPError as exc:
            raise http.transport_error(KIND, exc) from None
        raise LightningProtocolError("ended the payment stream without its state", backend=KIND)

    # -- the node

    async def node_info(self) -> NodeInfo:
        info = await self._call("GET", "/v1/getinfo")
        pubkey = http.field(KIND, info, "identity_pubkey", str)
        chains = http.field(KIND, info, "chains", list)
        if not chains or not isinstance(chains[0], dict) or not isinstance(chains[0].get("network"), str):
            raise LightningProtocolError("answered without its network", backend=KIND)
        network: str = chains[0]["network"]
        alias = info.get("alias")
        return NodeInfo(
            pubkey=pubkey,
            alias=alias if isinstance(alias, str) else "",
            network=network_named(network) or network,
            backend=KIND,
        )

    async def close(self) -> None:
        await self._http.aclose()


def open_backend(connection: Connection, env: BackendEnv) -> LndRest:
    """``lnd-rest://host:8080?macaroon=…&cert=…`` or ``lndconnect://host:port?cert=…&macaroon=…``.

    Parameters: ``macaroon`` (required: hex, base64url or a file path), ``cert`` (the node's
    ``tls.cert``: a path, PEM, or base64url DER; without it the system's CAs are trusted),
    ``tls=0``, ``timeout`` (seconds a request), ``pay_timeout`` (seconds LND may spend on a payment,
    60 by default), ``heartbeat`` (idle seconds before a quiet settlement stream checks the
    node, 60) and ``private=1`` (route hints to private channels in invoices).
    """
    return LndRest(connection, env)
