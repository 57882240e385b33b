"""The ``LightningBackend`` protocol and the typed, immutable results every backend returns.

Backends never guess: an outgoing payment is SETTLED, FAILED, PENDING or UNKNOWN, and only an
explicit FAILED may release anything. An exception while paying is UNKNOWN, to be followed by a
status check.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable


class PaymentStatus(enum.Enum):
    SETTLED = "settled"
    FAILED = "failed"
    PENDING = "pending"
    UNKNOWN = "unknown"


class InvoiceStatus(enum.Enum):
    OPEN = "open"
    SETTLED = "settled"
    CANCELED = "canceled"  # expired or cancelled: can no longer be paid
    UNKNOWN = "unknown"  # the backend does not know this invoice


@dataclass(frozen=True, slots=True)
class CreatedInvoice:
    payment_hash: str
    payment_request: str
    backend_invoice_id: str
    amount_msat: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class InvoiceState:
    payment_hash: str
    status: InvoiceStatus
    amount_received_msat: int = 0
    settled_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Settlement:
    """An incoming payment the backend reports as settled (its index orders the stream)."""

    payment_hash: str
    amount_received_msat: int
    settled_at: datetime
    settle_index: int


@dataclass(frozen=True, slots=True)
class PaymentResult:
    status: PaymentStatus
    payment_hash: str
    preimage: str | None = None
    fee_msat: int = 0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class NodeInfo:
    pubkey: str
    alias: str
    network: str
    backend: str


class LightningError(Exception):
    """The backend could not be reached or answered something we cannot use."""


@runtime_checkable
class LightningBackend(Protocol):
    name: str

    async def create_invoice(
        self,
        *,
        amount_msat: int,
        description: str | None = None,
        description_hash: bytes | None = None,
        expiry_seconds: int = 3600,
    ) -> CreatedInvoice: ...

    async def lookup_invoice(self, payment_hash: str) -> InvoiceState: ...

    def settlements(self, after_index: int = 0) -> AsyncIterator[Settlement]:
        """Settled incoming payments with ``settle_index > after_index``, then new ones as they come."""
        ...

    async def pay_invoice(
        self, bolt11: str, *, amount_msat: int | None = None, max_fee_msat: int = 0
    ) -> PaymentResult: ...

    async def node_info(self) -> NodeInfo: ...

    async def close(self) -> None: ...
