"""Request and response shapes of the payments API (camelCase, as the Lightning Enable API has them)."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from urllib.parse import urlsplit

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Row

from boltgate.db.raw import Record
from boltgate.kit import money
from boltgate.kit.clock import rfc3339
from boltgate.payment.models import Payment

METADATA_MAX_BYTES = 4096
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _printable(value: str, limit: int) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    if len(value) > limit:
        raise ValueError(f"must be at most {limit} characters")
    return value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http(s) URL")
    if _CONTROL.search(value) or " " in value:
        raise ValueError("must not contain spaces or control characters")
    return value


def decimal_text(value: Any) -> Any:
    """Amounts arrive as JSON numbers or strings; floats are read by their shortest repr, exactly."""
    if isinstance(value, bool):
        raise ValueError("must be a number")
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except InvalidOperation as exc:
            raise ValueError("must be a decimal number") from exc
    return value


def positive_amount(value: Decimal) -> Decimal:
    if not value.is_finite() or value <= 0:
        raise ValueError("must be greater than 0")
    if value > Decimal("1e12"):
        raise ValueError("is too large")
    return value


def currency_code(value: str) -> str:
    code = value.upper()
    if code not in money.SUPPORTED_CURRENCIES:
        raise ValueError(f"unsupported currency {value!r}")
    return code


def printable(value: str | None, limit: int) -> str | None:
    return None if value is None else _printable(value, limit)


_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def multiline(value: str | None) -> str | None:
    """Free text that may hold line breaks and tabs, but no other control character (nor NUL)."""
    if value is not None and _CONTROL_BUT_LINES.search(value):
        raise ValueError("must not contain control characters other than line breaks and tabs")
    return value


def http_url(value: str | None) -> str | None:
    return None if value is None else _http_url(value)


class PaymentCreate(BaseModel):
    """Body of ``POST /api/payments``. Unknown fields are ignored (clients of other versions send more)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    orderId: str = Field(min_length=1, max_length=200, description="your order id, unique per merchant")
    amount: Decimal = Field(description="amount in `currency`, > 0, at most the currency's decimals")
    currency: str = Field(min_length=3, max_length=4, description="USD, EUR, GBP, … or BTC")
    description: str | None = Field(None, max_length=500)
    customerEmail: str | None = Field(None, max_length=254)
    customerName: str | None = Field(None, max_length=200)
    successUrl: str | None = Field(None, max_length=2048)
    cancelUrl: str | None = Field(None, max_length=2048)
    metadata: dict[str, Any] | None = Field(None, description="JSON object, at most 4 KB serialised")

    @field_validator("orderId", "description", "customerName")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return None if value is None else _printable(value, 500)

    _amount_text = field_validator("amount", mode="before")(decimal_text)
    _amount = field_validator("amount")(positive_amount)
    _currency = field_validator("currency")(currency_code)

    @field_validator("customerEmail")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.match(value):
            raise ValueError("must be an email address")
        return value

    @field_validator("successUrl", "cancelUrl")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(orjson.dumps(value)) > METADATA_MAX_BYTES:
            raise ValueError(f"must be at most {METADATA_MAX_BYTES} bytes as JSON")
        return value

    def fingerprint(self) -> str:
        """Hash of the normalised body: the same order sent twice has the same fingerprint."""
        data = self.model_dump(mode="json")
        data["amount"] = str(self.amount.normalize())
        return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


class PaymentOut(BaseModel):
    """A payment as the API returns it (also the documented response schema)."""

    invoiceId: str
    orderId: str
    openNodeChargeId: str = Field(description="the backend's invoice id (name kept for compatibility)")
    status: Literal["unpaid", "paid", "expired", "refunded"]
    amount: float = Field(description="decimal amount in `currency` (exact decimal digits)")
    currency: str
    amountSats: int
    lightningInvoice: str
    onchainAddress: str | None
    hostedCheckoutUrl: str
    paymentHash: str
    description: str | None
    customerEmail: str | None
    customerName: str | None
    successUrl: str | None
    cancelUrl: str | None
    metadata: dict[str, Any] | None
    exchangeRate: str | None = Field(description="fiat per BTC used to price the payment")
    rateSource: str | None
    createdAt: datetime
    expiresAt: datetime
    paidAt: datetime | None
    expiredAt: datetime | None


class PaymentList(BaseModel):
    items: list[PaymentOut]
    total: int
    limit: int
    offset: int


def payment_out(payment: Payment | Row[Any] | Record, base_url: str) -> dict[str, Any]:
    """The response dict, built by hand (no validation on the way out: this is the hot path)."""
    return {
        "invoiceId": payment.id,
        "orderId": payment.order_id,
        "openNodeChargeId": payment.backend_invoice_id,
        "status": payment.status,
        "amount": orjson.Fragment(payment.amount),
        "currency": payment.currency,
        "amountSats": payment.amount_sats,
        "lightningInvoice": payment.payment_request,
        "onchainAddress": None,
        "hostedCheckoutUrl": f"{base_url}/checkout/{payment.id}",
        "paymentHash": payment.payment_hash,
        "description": payment.description,
        "customerEmail": payment.customer_email,
        "customerName": payment.customer_name,
        "successUrl": payment.success_url,
        "cancelUrl": payment.cancel_url,
        "metadata": payment.metadata_,
        "exchangeRate": payment.rate,
        "rateSource": payment.rate_source,
        "createdAt": rfc3339(payment.created_at),
        "expiresAt": rfc3339(payment.expires_at),
        "paidAt": rfc3339(payment.paid_at),
        "expiredAt": rfc3339(payment.expired_at),
    }
