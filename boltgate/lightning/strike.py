"""Strike as a Lightning backend: a custodial account at https://docs.strike.me (API v1).

It speaks Strike's REST API with the API key as ``Authorization: Bearer <key>``:

- Receiving uses *receive requests*, the part of the API that takes an expiry and a description
  hash and finds an invoice by its payment hash (an *invoice* + *quote* has neither):
  ``POST /v1/receive-requests`` ``{bolt11: {amount: {amount: "0.00021000", currency: "BTC"},
  description | descriptionHash, expiryInSeconds}, targetCurrency: "BTC"}`` answers
  ``{receiveRequestId, bolt11: {invoice, paymentHash, btcAmount, expires}}``; the receive request
  id is the backend invoice id and the invoice is decoded and checked
  (:func:`boltgate.lightning.verify.created_invoice`). A description longer than Strike's 250
  characters is committed to by its SHA-256 hash.
- ``GET /v1/receive-requests?$paymentHash=`` finds the request (``bolt11.expires``) and
  ``GET /v1/receive-requests/{id}/receives`` lists what it received (``state`` PENDING or
  COMPLETED, ``amountReceived``, ``completed``): an invoice is SETTLED, OPEN, CANCELED (expired)
  or UNKNOWN by its payment hash alone, after a restart too.
- Paying: ``POST /v1/payment-quotes/lightning`` ``{lnInvoice, sourceCurrency: "BTC"}`` (with an
  ``idempotency-key`` header) answers ``{paymentQuoteId, amount, lightningNetworkFee, totalFee}``;
  the quote is executed only when its amount is the invoice's and its fee within the limit:
  ``PATCH /v1/payment-quotes/{id}/execute`` answers a payment ``{paymentId, state:
  PENDING|COMPLETED|FAILED, lightningNetworkFee, totalFee}``, followed by ``GET
  /v1/payments/{paymentId}``. Strike returns no preimage (COMPLETED is SETTLED without one) and
  has no documented way to find a payment by its invoice: a payment whose answer was lost, or made
  before a restart, is UNKNOWN.
- ``GET /v1/accounts/profile`` gives the account id and handle (:meth:`Strike.node_info`).

All amounts are BTC decimal strings, converted exactly. Errors are ``{"traceId", "data":
{"status", "code", "message"}}`` (e.g. 422 ``LN_ROUTE_NOT_FOUND``, ``BALANCE_TOO_LOW``).
Webhooks need a public URL, so settlements are found by polling (no push).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from boltgate.lightning import verify
from boltgate.lightning.base import (
    CreatedInvoice,
    InvoiceState,
    InvoiceStatus,
    LightningProtocolError,
    LightningUnavailable,
    LightningUnsupported,
    NodeInfo,
    PaymentResult,
    PaymentStatus,
)
from boltgate.lightning.connection import Connection
from boltgate.lightning.custodial import Api, CustodialBackend, btc_text, msat_of_btc, open_api, time_of
from boltgate.lightning.http import error_body, field
from boltgate.lightning.registry import BackendEnv

PUBLIC_HOSTS = {"api.strike.me": "mainnet"}
MAX_DESCRIPTION = 250
STATES = {
    "COMPLETED": PaymentStatus.SETTLED,
    "FAILED": PaymentStatus.FAILED,
    "PENDING": PaymentStatus.PENDING,
}
MAYBE_SENT = frozenset(
    {"PAYMENT_PROCESSED", "PROCESSING_PAYMENT", "LN_INVOICE_PROCESSED", "PROCESSING_CONFLICT"}
)
_CANNOT_PAY = "lacks the payment scopes"


class Strike(CustodialBackend):
    """A Strike account (see the module docstring for the API it speaks)."""

    name = "strike"

    def __init__(self, api: Api, connection: Connection) -> None:
        super().__init__(api, {"Authorization": f"Bearer {api.key}"}, connection)
        self._info: NodeInfo | None = None

    def said(self, response: httpx.Response) -> str:
        body = error_body(response)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            return ""
        parts = [data.get("code"), data.get("message")]
        return ": ".join(part for part in parts if isinstance(part, str) and part)

    def _code(self, response: httpx.Response) -> str:
        return self.said(response).partition(":")[0]

    # -- receiving

    async def create_invoice(
        self,
        *,
        amount_msat: int,
        description: str | None = None,
        description_hash: bytes | None = None,
        expiry_seconds: int = 3600,
    ) -> CreatedInvoice:
        amount = btc_text(self.name, amount_msat)
        if isinstance(expiry_seconds, bool) or not isinstance(expiry_seconds, int) or expiry_seconds <= 0:
            raise LightningUnsupported(
                f"cannot make an invoice expire in {expiry_seconds!r} s", backend=self.name
            )
        bolt11: dict[str, Any] = {
            "amount": {"amount": amount, "currency": "BTC"},
            "expiryInSeconds": expiry_seconds,
        }
        if description_hash is not None:
            bolt11["descriptionHash"] = description_hash.hex()
        elif description and len(description) > MAX_DESCRIPTION:
            bolt11["descriptionHash"] = hashlib.sha256(description.encode()).hexdigest()
        elif description:
            bolt11["description"] = description
        body = {"bolt11": bolt11, "targetCurrency": "BTC"}
        data = self.json(await self.send("POST", "/v1/receive-requests", json=body))
        request_id = field(self.name, data, "receiveRequestId", str)
        answer = field(self.name, data, "bolt11", dict)
        invoice = field(self.name, answer, "invoice", str)
        btc = answer.get("btcAmount")
        if btc is not None and msat_of_btc(self.name, btc, "btcAmount") != amount_msat:
            raise LightningProtocolError(
                f"made an invoice of {btc[:32]!r} BTC, not {amount}", backend=self.name
            )
        return verify.created_invoice(
            self.name,
            invoice,
            amount_msat=amount_msat,
            description=description or None,
            description_hash=description_hash,
            network=self.network,
            payment_hash=field(self.name, answer, "paymentHash", str),
            backend_invoice_id=request_id,
        )

    async def lookup_invoice(
        self, payment_hash: str, *, backend_invoice_id: str | None = None
    ) -> InvoiceState:
        """By payment hash (Strike's documented filter), then the receives of that request alone."""
        payment_hash = payment_hash.lower()
        listed = await self.send("GET", "/v1/receive-requests", params={"$paymentHash": payment_hash})
        mine = [r for r in self._items(listed) if self._is(r.get("bolt11"), payment_hash)]
        if not mine:
            return InvoiceState(payment_hash=payment_hash, status=InvoiceStatus.UNKNOWN)
        request_id = field(self.name, mine[0], "receiveRequestId", str)
        path = f"/v1/receive-requests/{quote(request_id, safe='')}/receives"
        received = self._items(await self.send("GET", path))
        done = [
            r for r in received if r.get("state") == "COMPLETED" and r.get("receiveRequestId") == request_id
        ]
        if done:
            return InvoiceState(
                payment_hash=payment_hash,
                status=InvoiceStatus.SETTLED,
                amount_received_msat=sum(self._received(r) for r in done),
                settled_at=max(time_of(self.name, r.get("completed"), "completion time") for r in done),
            )
        expires = time_of(self.name, mine[0]["bolt11"].get("expires"), "expiry")
        status = InvoiceStatus.CANCELED if expires <= datetime.now(UTC) else InvoiceStatus.OPEN
        return InvoiceState(payment_hash=payment_hash, status=status)

    def _items(self, response: httpx.Response) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = field(self.name, self.json(response), "items", list)
        if not all(isinstance(item, dict) for item in items):
            raise LightningProtocolError("answered a list of something else", backend=self.name)
        return items

    def _is(self, part: Any, payment_hash: str) -> bool:
        """Whether a request's ``bolt11`` is this payment hash's."""
        found = part.get("paymentHash") if isinstance(part, dict) else None
        return isinstance(found, str) and found.lower() == payment_hash

    def _received(self, receive: dict[str, Any]) -> int:
        for name in ("amountReceived", "amountCredited"):
            amount = receive.get(name)
            if isinstance(amount, dict) and amount.get("currency") == "BTC":
                return msat_of_btc(self.name, amount.get("amount"), name)
        raise LightningProtocolError(
            "answered a payment received in another currency than BTC", backend=self.name
        )

    # -- paying

    async def pay_invoice(
        self, bolt11: str, *, amount_msat: int | None = None, max_fee_msat: int = 0
    ) -> PaymentResult:
        target = await self.to_pay(bolt11, amount_msat)
        if isinstance(target, PaymentResult):
            return target
        payment_hash = target.payment_hash
        body: dict[str, Any] = {"lnInvoice": bolt11.strip(), "sourceCurrency": "BTC"}
        if target.send_msat is not None:
            body["amount"] = {"amount": btc_text(self.name, target.send_msat), "currency": "BTC"}
        # a quote is not a payment: failing here sent nothing, so errors are raised as they are
        response = await self.send(
            "POST", "/v1/payment-quotes/lightning", json=body, headers={"idempotency-key": str(uuid.uuid4())}
        )
        refused = self.refused(response, payment_hash, _CANNOT_PAY)
        if refused is not None:
            return refused
        quote_answer = self.json(response)
        quote_id = field(self.name, quote_answer, "paymentQuoteId", str)
        wanted = target.invoice_msat if target.invoice_msat is not None else target.send_msat
        if self._btc(quote_answer.get("amount"), "quote amount") != wanted:
            raise LightningProtocolError(
                "quoted another amount than the invoice's; not paid", backend=self.name
            )
        fee_msat = self._fee(quote_answer)
        if fee_msat > max_fee_msat:
            return PaymentResult(
                PaymentStatus.FAILED,
                payment_hash,
                error=f"fee {fee_msat} msat above the limit of {max_fee_msat}",
            )
        try:
            response = await self.send("PATCH", f"/v1/payment-quotes/{quote(quote_id, safe='')}/execute")
        except LightningUnavailable as exc:  # it may have reached Strike: ask, never resend
            return PaymentResult(PaymentStatus.UNKNOWN, payment_hash, error=str(exc))
        if response.status_code >= 500 or self._code(response) in MAYBE_SENT:
            return PaymentResult(PaymentStatus.UNKNOWN, payment_hash, error=self.said(response) or None)
        refused = self.refused(response, payment_hash, _CANNOT_PAY)
        if refused is not None:
            return refused
        try:
            return self._payment(payment_hash, self.json(response))
        except LightningProtocolError as exc:
            return PaymentResult(PaymentStatus.UNKNOWN, payment_hash, error=str(exc))

    async def lookup_payment(self, payment_hash: str) -> PaymentResult:
        payment_hash = payment_hash.lower()
        payment_id = self._payments.get(payment_hash)
        if payment_id is None:
            return PaymentResult(PaymentStatus.UNKNOWN, payment_hash)
        response = await self.send("GET", f"/v1/payments/{quote(payment_id, safe='')}")
        if response.status_code == 404:
            return PaymentResult(PaymentStatus.UNKNOWN, payment_hash)
        return self._payment(payment_hash, self.json(response))

    def _payment(self, payment_hash: str, data: Any) -> PaymentResult:
        payment_id = field(self.name, data, "paymentId", str)
        self._payments.put(payment_hash, payment_id)
        status = STATES.get(field(self.name, data, "state", str), PaymentStatus.UNKNOWN)
        fee_msat = self._fee(data)
        error = (
            None
            if status in (PaymentStatus.SETTLED, PaymentStatus.PENDING)
            else f"payment {data['state'][:32]}"
        )
        return PaymentResult(status, payment_hash, fee_msat=fee_msat, error=error)

    def _fee(self, data: dict[str, Any]) -> int:
        """What the quote or payment costs above the amount (``totalFee``, else the LN fee)."""
        for name in ("totalFee", "lightningNetworkFee"):
            if data.get(name) is not None:
                return self._btc(data[name], name)
        return 0

    def _btc(self, amount: Any, what: str) -> int:
        if not isinstance(amount, dict) or amount.get("currency") != "BTC":
            raise LightningProtocolError(f"answered without a BTC {what}", backend=self.name)
        return msat_of_btc(self.name, amount.get("amount"), what)

    async def node_info(self) -> NodeInfo:
        """The account's id and handle (``GET /v1/accounts/profile``), asked once."""
        if self._info is None:
            profile = self.json(await self.send("GET", "/v1/accounts/profile"))
            account = field(self.name, profile, "id", str)
            handle = profile.get("handle")
            alias = handle if isinstance(handle, str) and handle else "Strike"
            self._info = NodeInfo(pubkey=account, alias=alias, network=self.network, backend=self.name)
        return self._info


def open_backend(connection: Connection, env: BackendEnv) -> Strike:
    """``strike://?key=<API key>`` (api.strike.me) or ``strike://host:port?key=…&tls=0``."""
    return Strike(open_api(connection, env.network, PUBLIC_HOSTS), connection)
