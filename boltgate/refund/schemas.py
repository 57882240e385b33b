"""Request and response shapes of the refunds API (camelCase, as the Lightning Enable API has them)."""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from boltgate.kit.clock import rfc3339
from boltgate.payment.schemas import currency_code, decimal_text, printable
from boltgate.refund.models import Refund

REASON_MAX = 500
# LUD-16: the user part is a-z0-9-_.; a port is allowed after the domain (self-hosted servers)
LIGHTNING_ADDRESS = re.compile(r"^[a-z0-9._+-]{1,64}@[a-z0-9.-]{1,253}(:[0-9]{1,5})?$")


class RefundCreate(BaseModel):
    """``lightningInvoice`` (BOLT11 for exactly the refund), ``lightningAddress`` (ours: LNURL-pay)
    or ``bitcoinAddress`` (refused: no backend pays on-chain); none of them: a claim link."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    invoiceId: str = Field(min_length=1, max_length=64)
    amount: Decimal = Field(description="in the payment's currency")
    currency: str = Field(min_length=3, max_length=8)
    lightningInvoice: str | None = Field(None, max_length=4096)
    lightningAddress: str | None = Field(None, max_length=320)
    bitcoinAddress: str | None = Field(None, max_length=120)
    reason: str | None = Field(None, max_length=REASON_MAX)

    _amount = field_validator("amount", mode="before")(decimal_text)

    @field_validator("amount")
    @classmethod
    def _positive(cls, value: Decimal) -> Decimal:
        if not value.is_finite() or value <= 0:
            raise ValueError("must be greater than 0")
        if value > Decimal("1e12"):
            raise ValueError("is too large")
        return value

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        return currency_code(value)

    @field_validator("invoiceId")
    @classmethod
    def _invoice_id(cls, value: str) -> str:
        return printable(value, 64) or ""

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str | None) -> str | None:
        return printable(value, REASON_MAX) if value else None

    @field_validator("lightningAddress")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if not value:
            return None
        value = value.lower().removeprefix("lightning:")
        if not LIGHTNING_ADDRESS.fullmatch(value):
            raise ValueError("must be a Lightning address (name@domain)")
        return value

    @field_validator("lightningInvoice", "bitcoinAddress")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

    def fingerprint(self) -> str:
        """What makes two requests "the same body" for an Idempotency-Key."""
        fields = self.model_dump(mode="json")
        fields["amount"] = format(self.amount.normalize(), "f")
        return hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).hexdigest()


class ClaimOut(BaseModel):
    lnurl: str = Field(description="bech32 LNURL (LUD-01) of the withdraw request, for a QR code")
    url: str = Field(description="the same as an lnurlw:// link (LUD-17)")
    expiresAt: str


class RefundOut(BaseModel):
    refundId: str
    invoiceId: str
    status: str = Field(description="pending, completed or failed")
    amount: float
    currency: str
    amountSats: int
    type: str = Field(description="lightning (an invoice or a Lightning address) or claim (a claim link)")
    reason: str | None
    createdAt: str
    completedAt: str | None
    failedAt: str | None
    failureReason: str | None
    lightningAddress: str | None
    paymentHash: str | None
    preimage: str | None = Field(description="proof of payment, once completed")
    feeSats: int | None
    claim: ClaimOut | None


class RefundList(BaseModel):
    items: list[RefundOut]
    total: int
    limit: int
    offset: int


def refund_out(refund: Refund, claim: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "refundId": refund.id,
        "invoiceId": refund.payment_id,
        "status": refund.status,
        "amount": orjson.Fragment(refund.amount),
        "currency": refund.currency,
        "amountSats": refund.amount_sats,
        "type": refund.type,
        "reason": refund.reason,
        "createdAt": rfc3339(refund.created_at),
        "completedAt": rfc3339(refund.completed_at),
        "failedAt": rfc3339(refund.failed_at),
        "failureReason": refund.failure,
        "lightningAddress": refund.lightning_address,
        "paymentHash": refund.payment_hash,
        "preimage": refund.preimage,
        "feeSats": None if refund.fee_msat is None else -(-refund.fee_msat // 1000),
        "claim": claim,
    }
