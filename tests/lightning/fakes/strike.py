"""A fake Strike API (https://docs.strike.me, v1) on 127.0.0.1.

What it serves, as Strike documents it (``Authorization: Bearer <API key>``; errors ``{"traceId",
"data": {"status", "code", "message", "values", "validationErrors"}}``; amounts are BTC decimal
strings):

- ``POST /v1/receive-requests`` ``{bolt11: {amount, description | descriptionHash,
  expiryInSeconds}, targetCurrency}`` → 201 a receive request with ``bolt11: {invoice,
  paymentHash, btcAmount, expires}`` (a real BOLT11 signed with the fake's node key);
- ``GET /v1/receive-requests?$paymentHash=``, ``GET /v1/receive-requests/{id}``,
  ``GET /v1/receive-requests/{id}/receives`` (``items``, ``count``);
- ``POST /v1/payment-quotes/lightning`` ``{lnInvoice, sourceCurrency, amount?}`` → 201 a quote
  (``idempotency-key`` header: a repeat is 422 ``DUPLICATE_PAYMENT_QUOTE``);
  ``PATCH /v1/payment-quotes/{id}/execute`` → 202 a payment (PENDING|COMPLETED|FAILED) or 422
  ``LN_ROUTE_NOT_FOUND`` / ``PAYMENT_PROCESSED``; ``GET /v1/payments/{id}``;
- ``GET /v1/accounts/profile``.

Keys carry Strike's scopes. Faults and outcomes are the contract harness's, plus the outcome
``failed_state`` (the execution answers a payment in state FAILED rather than an error).
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from aiohttp import web

from tests.lightning.fakes.opennode import CustodialFake, Refusal, Signed, _iso

SCOPES = frozenset(
    {
        "partner.receive-request.create",
        "partner.receive-request.read",
        "partner.payment-quote.lightning.create",
        "partner.payment-quote.execute",
        "partner.payment.read",
        "partner.account.profile.read",
    }
)
RECEIVE_ONLY = ("partner.receive-request.create", "partner.receive-request.read")
HEX64 = re.compile(r"[0-9a-f]{64}")


def btc(msat: int) -> dict[str, str]:
    return {"amount": f"{Decimal(msat).scaleb(-11):.11f}".rstrip("0").rstrip(".") or "0", "currency": "BTC"}


def msat_of(amount: Any) -> int | None:
    """Msat of a request's BTC amount (at most 8 decimals), None when invalid."""
    if (
        not isinstance(amount, dict)
        or amount.get("currency") != "BTC"
        or not isinstance(amount.get("amount"), str)
    ):
        return None
    try:
        value = Decimal(amount["amount"])
    except InvalidOperation:
        return None
    if not value.is_finite() or value <= 0 or value != value.quantize(Decimal("1e-8")):
        return None
    return int(value * 100_000_000_000)


@dataclass
class Receive:
    id: str
    description: str | None
    description_hash: str | None
    amount_msat: int
    created: float
    signed: Signed
    paid_at: float | None = None

    def view(self) -> dict[str, Any]:
        return {
            "receiveRequestId": self.id,
            "created": _iso(self.created),
            "targetCurrency": "BTC",
            "bolt11": {
                "invoice": self.signed.invoice,
                "requestedAmount": btc(self.amount_msat),
                "btcAmount": btc(self.amount_msat)["amount"],
                "description": self.description,
                "descriptionHash": self.description_hash,
                "paymentHash": self.signed.payment_hash,
                "expires": _iso(self.signed.expires_at),
            },
        }

    def receives(self) -> list[dict[str, Any]]:
        if self.paid_at is None:
            return []
        return [
            {
                "receiveId": str(uuid.uuid5(uuid.NAMESPACE_URL, self.id)),
                "receiveRequestId": self.id,
                "type": "LIGHTNING",
                "state": "COMPLETED",
                "amountReceived": btc(self.amount_msat),
                "amountCredited": btc(self.amount_msat),
                "created": _iso(self.paid_at),
                "completed": _iso(self.paid_at),
                "lightning": {
                    "invoice": self.signed.invoice,
                    "preimage": self.signed.preimage,
                    "description": self.description,
                    "descriptionHash": self.description_hash,
                    "paymentHash": self.signed.payment_hash,
                },
            }
        ]


@dataclass
class FakeStrike(CustodialFake):
    kind: ClassVar[str] = "strike"
    scheme: ClassVar[str] = "strike"
    permissions: ClassVar[frozenset[str]] = SCOPES
    account: str = field(default_factory=lambda: str(uuid.uuid4()))
    quote_extra_msat: int = 0  # quote another amount than the invoice's (a broken API)
    requests: dict[str, Receive] = field(default_factory=dict)
    quotes: dict[str, dict[str, Any]] = field(default_factory=dict)
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    idempotency: dict[str, str] = field(default_factory=dict)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/receive-requests", self.create_request),
            web.get("/v1/receive-requests", self.find_requests),
            web.get("/v1/receive-requests/{id}", self.request_info),
            web.get("/v1/receive-requests/{id}/receives", self.request_receives),
            web.post("/v1/payment-quotes/lightning", self.quote),
            web.patch("/v1/payment-quotes/{id}/execute", self.execute),
            web.get("/v1/payments/{id}", self.payment_info),
            web.get("/v1/accounts/profile", self.profile),
        ]

    def error(self, status: int, code: str, message: str, **values: Any) -> web.Response:
        data = {"status": status, "code": code, "message": message, "values": values, "validationErrors": {}}
        return web.json_response({"traceId": uuid.uuid4().hex, "data": data}, status=status)

    def key_of(self, request: web.Request) -> str | None:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        return key if scheme == "Bearer" else None

    async def set_outcome(self, name: str) -> None:
        if name == "failed_state":
            self.outcome = name
        else:
            await super().set_outcome(name)

    # -- receiving

    async def create_request(self, request: web.Request) -> web.Response:
        self.need(request, "partner.receive-request.create")
        body = await request.json()
        params = body.get("bolt11")
        amount = msat_of(params.get("amount")) if isinstance(params, dict) else None
        if amount is None or body.get("targetCurrency", "BTC") != "BTC":
            self.refuse(400, "INVALID_DATA", "Invalid bolt11 amount")
        description, digest = params.get("description"), params.get("descriptionHash")
        expiry = params.get("expiryInSeconds", 3600)
        if description is not None and not (isinstance(description, str) and 1 <= len(description) <= 250):
            self.refuse(400, "INVALID_DATA", "description must be 1 to 250 characters")
        if digest is not None and not (isinstance(digest, str) and HEX64.fullmatch(digest)):
            self.refuse(400, "INVALID_DATA", "descriptionHash must be a hex SHA-256 hash")
        if isinstance(expiry, bool) or not isinstance(expiry, int) or expiry <= 0:
            self.refuse(400, "INVALID_DATA", "expiryInSeconds must be positive")
        signed = self.sign(
            amount,
            description=description,
            description_hash=bytes.fromhex(digest) if digest else None,
            expiry=expiry,
        )
        receive = Receive(
            str(uuid.uuid4()), description if not digest else None, digest, amount, time.time(), signed
        )
        self.requests[receive.id] = receive
        return web.json_response(receive.view(), status=201)

    def _by_hash(self, request: web.Request) -> list[Receive]:
        wanted = request.query.get("$paymentHash")
        return [r for r in self.requests.values() if wanted in (None, r.signed.payment_hash)]

    async def find_requests(self, request: web.Request) -> web.Response:
        self.need(request, "partner.receive-request.read")
        items = [r.view() for r in self._by_hash(request)]
        return web.json_response({"items": items, "count": len(items)})

    def _request(self, request: web.Request) -> Receive:
        receive = self.requests.get(request.match_info["id"])
        if receive is None:
            self.refuse(404, "NOT_FOUND", "Receive request not found")
        return receive

    async def request_info(self, request: web.Request) -> web.Response:
        self.need(request, "partner.receive-request.read")
        return web.json_response(self._request(request).view())

    async def request_receives(self, request: web.Request) -> web.Response:
        self.need(request, "partner.receive-request.read")
        items = self._request(request).receives()
        return web.json_response({"items": items, "count": len(items)})

    async def settle(self, payment_hash: str) -> None:
        for receive in self.requests.values():
            if receive.signed.payment_hash == payment_hash:
                assert receive.paid_at is None and receive.signed.expires_at > time.time()
                receive.paid_at = time.time()
                return
        raise AssertionError(f"no receive request with payment hash {payment_hash}")

    # -- paying

    async def quote(self, request: web.Request) -> web.Response:
        self.need(request, "partner.payment-quote.lightning.create")
        key = request.headers.get("idempotency-key")
        if key in self.idempotency:
            duplicate = self.error(
                422, "DUPLICATE_PAYMENT_QUOTE", "Duplicate", paymentQuoteId=self.idempotency[key]
            )
            raise Refusal(duplicate)
        body = await request.json()
        decoded = self.decode(body.get("lnInvoice"))
        if decoded is None:
            self.refuse(422, "INVALID_LN_INVOICE", "Invalid lightning invoice")
        if body.get("sourceCurrency", "BTC") != "BTC":
            self.refuse(422, "CURRENCY_UNSUPPORTED", "Source currency not available")
        amount = decoded.amount_msat
        if (amount is None) == ("amount" not in body):
            self.refuse(400, "INVALID_DATA", "amount must be given exactly for a zero-amount invoice")
        amount = amount if amount is not None else msat_of(body["amount"])
        if amount is None:
            self.refuse(400, "INVALID_DATA", "Invalid amount")
        if amount + self.fee_msat > self.balance_msat:
            self.refuse(422, "BALANCE_TOO_LOW", "Balance too low")
        quote_id = str(uuid.uuid4())
        if key:
            self.idempotency[key] = quote_id
        amount += self.quote_extra_msat
        self.quotes[quote_id] = {"amount": amount, "fee": self.fee_msat, "executed": False}
        return web.json_response(
            {
                "paymentQuoteId": quote_id,
                "description": decoded.description,
                "validUntil": _iso(time.time() + 60),
                "amount": btc(amount),
                "lightningNetworkFee": btc(self.fee_msat),
                "totalFee": btc(self.fee_msat),
                "totalAmount": btc(amount + self.fee_msat),
            },
            status=201,
        )

    async def execute(self, request: web.Request) -> web.Response:
        self.need(request, "partner.payment-quote.execute")
        quote = self.quotes.get(request.match_info["id"])
        if quote is None:
            self.refuse(404, "NOT_FOUND", "Payment quote not found")
        if quote["executed"]:
            self.refuse(422, "PAYMENT_PROCESSED", "Payment quote already processed")
        quote["executed"] = True
        if self.outcome == "failed":
            self.refuse(422, "LN_ROUTE_NOT_FOUND", "Lightning route not found")
        state = {"settled": "COMPLETED", "drop": "COMPLETED", "pending": "PENDING"}.get(
            self.outcome, "FAILED"
        )
        now = time.time()
        payment_id = str(uuid.uuid4())
        payment: dict[str, Any] = {
            "paymentId": payment_id,
            "state": state,
            "result": {"COMPLETED": "SUCCESS", "PENDING": "PENDING"}.get(state, "FAILURE"),
            "completed": _iso(now) if state == "COMPLETED" else None,
            "delivered": _iso(now) if state == "COMPLETED" else None,
            "amount": btc(quote["amount"]),
            "totalFee": btc(quote["fee"]),
            "lightningNetworkFee": btc(quote["fee"]),
            "totalAmount": btc(quote["amount"] + quote["fee"]),
        }
        if state != "FAILED":
            self.balance_msat -= quote["amount"] + quote["fee"]
        self.payments[payment_id] = payment
        if self.outcome == "drop":
            self.cut(request)
        return web.json_response(payment, status=202)

    def complete(self, state: str = "COMPLETED") -> None:
        """Finish every pending payment."""
        for payment in self.payments.values():
            if payment["state"] == "PENDING":
                payment["state"] = state
                payment["completed"] = _iso(time.time())

    async def payment_info(self, request: web.Request) -> web.Response:
        self.need(request, "partner.payment.read")
        payment = self.payments.get(request.match_info["id"])
        if payment is None:
            self.refuse(404, "NOT_FOUND", "Payment not found")
        return web.json_response(payment)

    async def profile(self, request: web.Request) -> web.Response:
        self.need(request, "partner.account.profile.read")
        return web.json_response(
            {
                "id": self.account,
                "handle": "boltgate_fake",
                "avatarUrl": None,
                "description": None,
                "canReceive": True,
                "currencies": [
                    {"currency": "BTC", "isDefaultCurrency": True, "isAvailable": True, "isInvoiceable": True}
                ],
            }
        )
