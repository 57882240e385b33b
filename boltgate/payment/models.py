"""Payments (Lightning invoices a merchant asked for) and their idempotency keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from boltgate.db.base import Base, UTCDateTime


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("merchant_id", "order_id"),
        Index("ix_payments_status_expires_at", "status", "expires_at"),
        Index("ix_payments_merchant_created", "merchant_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    order_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    amount: Mapped[str] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(8))
    amount_sats: Mapped[int] = mapped_column(BigInteger)
    amount_msat: Mapped[int] = mapped_column(BigInteger)
    rate: Mapped[str | None] = mapped_column(String(40), nullable=True)
    rate_source: Mapped[str | None] = mapped_column(String(200), nullable=True)
    payment_hash: Mapped[str] = mapped_column(String(64), unique=True)
    payment_request: Mapped[str] = mapped_column(Text)
    backend_invoice_id: Mapped[str] = mapped_column(String(128))
    # the merchant's own backend that made the invoice (merchant_backends.id); None: the gateway's
    backend_ref: Mapped[str | None] = mapped_column(String(32), nullable=True)
    description: Mapped[str | None] = mapped_column(String(500), nullable=True)
    customer_email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    customer_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    success_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    cancel_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON, nullable=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    received_msat: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class IdempotencyKey(Base):
    """An ``Idempotency-Key`` header seen on a create: the same key and body give the same payment."""

    __tablename__ = "idempotency_keys"

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
