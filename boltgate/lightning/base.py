"""The ``LightningBackend`` protocol and the typed, immutable results every backend returns.

Backends never guess: an outgoing payment is SETTLED, FAILED, PENDING or UNKNOWN, and only an
explicit FAILED may release anything. An exception while paying is UNKNOWN, to be followed by a
status check (:meth:`LightningBackend.lookup_payment`), never by a blind retry.

Every failure is a :class:`LightningError` naming the backend (never its secrets):

- :class:`LightningUnavailable` — cannot be reached, refused the connection, answered 5xx or
  dropped a stream (retry later; the API answers 503 with ``Retry-After``);
- :class:`LightningTimeout` — no answer in time (a kind of unavailable);
- :class:`LightningRejected` — the backend said no: bad credentials, a request it refuses;
- :class:`LightningUnsupported` — the backend cannot do this at all (a receive-only key asked to
  pay, a feature it lacks);
- :class:`LightningProtocolError` — an answer we cannot use: garbage, or one that contradicts
  the request (an invoice for another amount, hash or network). Never treated as success.
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
    """An incoming payment the backend reports as settled. On a backend whose settlements are
    numbered (``resumable``), ``settle_index`` orders the stream and resumes it; elsewhere it is 0
    and what a dropped stream missed is caught by asking about the open payments."""

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
    network: str  # mainnet, testnet, signet or regtest (see network_named)
    backend: str


def network_named(name: str) -> str | None:
    """boltgate's name for a network as a node or wallet names it (``bitcoin`` is mainnet, every
    ``testnet…`` is testnet: they share the invoice prefix); None for a name it does not know."""
    name = name.lower()
    if name == "bitcoin":
        return "mainnet"
    if name.startswith("testnet"):
        return "testnet"
    return name if name in ("mainnet", "signet", "regtest") else None


class LightningError(Exception):
    """The backend could not do what was asked. ``backend`` is its kind (``lnd-rest``, ``nwc``…)."""

    def __init__(self, message: str, *, backend: str = "") -> None:
        self.backend = backend
        super().__init__(f"{backend}: {message}" if backend else message)


class LightningUnavailable(LightningError):
    """Cannot be reached, or answered 5xx, or a stream dropped: try again later."""


class LightningTimeout(LightningUnavailable):
    """No answer in time."""


class LightningRejected(LightningError):
    """The backend refused the request (credentials, permissions, parameters)."""


class LightningUnsupported(LightningError):
    """The backend cannot do this at all."""


class LightningProtocolError(LightningError):
    """An answer we cannot use: malformed, or contradicting what was asked."""


@runtime_checkable
class LightningBackend(Protocol):
    name: str  # the kind: dev, lnd-rest, clnrest, cln-rpc, phoenixd, lnbits, nwc, opennode, strike
    resumable: bool  # settlements carry a settle_index that resumes the stream after a restart

    async def create_invoice(
        self,
        *,
        amount_msat: int,
        description: str | None = None,
        description_hash: bytes | None = None,
        expiry_seconds: int = 3600,
    ) -> CreatedInvoice: ...

    async def lookup_invoice(
        self, payment_hash: str, *, backend_invoice_id: str | None = None
    ) -> InvoiceState:
        """The invoice's state; UNKNOWN when the backend does not know it. ``backend_invoice_id``
        is what :meth:`create_invoice` returned (custodial APIs look invoices up by their own id)."""
        ...

    def settlements(self, after_index: int = 0) -> AsyncIterator[Settlement]:
        """Settled incoming payments (with ``settle_index > after_index`` when ``resumable``), then new
        ones as they come. Raises :class:`LightningUnavailable` when the stream drops (the caller
        reconnects with backoff) and :class:`LightningUnsupported` at once when the backend has no
        push at all (the caller then polls the open invoices)."""
        ...

    async def pay_invoice(
        self, bolt11: str, *, amount_msat: int | None = None, max_fee_msat: int = 0
    ) -> PaymentResult:
        """Pay once. A transport failure after the request may have left is UNKNOWN, not an error.
        ``max_fee_msat`` caps the routing fee, 0 included (no fee: LND, Core Lightning and Strike
        then take only fee-free routes or quotes). Backends whose API takes no cap (phoenixd, NWC,
        LNbits, OpenNode) say so in their docs; callers always pass the cap they mean."""
        ...

    async def lookup_payment(self, payment_hash: str) -> PaymentResult:
        """What became of an outgoing payment (UNKNOWN when the backend has no record of it)."""
        ...

    async def node_info(self) -> NodeInfo: ...

    async def close(self) -> None: ...
