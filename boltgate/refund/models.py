"""Refunds of paid payments: what was asked, where it goes, and what became of the payment."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from boltgate.db.base import Base, UTCDateTime


class Refund(Base):
    """One refund. ``status`` is pending until the payment to the customer is known SETTLED
    (completed) or FAILED (failed). ``payment_hash`` is written *before* the backend is asked to
    pay, so a crash mid-payment leaves a record the background check can ask the backend about."""

    __tablename__ = "refunds"
    __table_args__ = (
        UniqueConstraint("merchant_id", "idempotency_key"),
        UniqueConstraint("payment_hash"),
        Index("ix_refunds_status_created", "status", "created_at"),
        Index("ix_refunds_merchant_created", "merchant_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))  # pending, completed, failed
    type: Mapped[str] = mapped_column(String(16))  # lightning, claim
    amount: Mapped[str] = mapped_column(String(40))  # in the payment's currency, canonical
    currency: Mapped[str] = mapped_column(String(8))
    amount_sats: Mapped[int] = mapped_column(BigInteger)
    max_fee_msat: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    lightning_address: Mapped[str | None] = mapped_column(String(320), nullable=True)
    payment_request: Mapped[str | None] = mapped_column(Text, nullable=True)
    payment_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # what pay_invoice answered: settled, failed, pending, unknown, not_sent; None: never answered
    pay_outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    preimage: Mapped[str | None] = mapped_column(String(64), nullable=True)
    fee_msat: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    failure: Mapped[str | None] = mapped_column(String(300), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    claim_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
