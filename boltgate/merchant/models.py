"""Merchants and their API keys (stored as SHA-256 hashes, shown once)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from boltgate.db.base import Base, UTCDateTime


class Merchant(Base):
    __tablename__ = "merchants"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Checkout branding and embedding (shown on the hosted checkout page).
    logo_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    frame_ancestors: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # Where its invoices are made: "gateway" (the operator's backend) or a kind of its own
    # connections (nwc, lnbits, strike, opennode…), see MerchantBackend.
    payment_provider: Mapped[str] = mapped_column(String(32), default="gateway", server_default="gateway")
    # Where dashboard sign-in links are sent: a confirmed address (PATCH /api/merchant/me makes it
    # pending until its owner follows the emailed confirmation link; the paid signup sets it
    # directly). email_key_id: the API key that set it; revoking that key ends sign-in by email.
    email: Mapped[str | None] = mapped_column(String(254), nullable=True, index=True)
    email_pending: Mapped[str | None] = mapped_column(String(254), nullable=True)
    email_key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Its plan (boltgate.merchant.plans; "unmetered": made by the operator, no period) and the end
    # of its paid (or trial) period: None = no end. See boltgate.merchant.account.
    plan_tier: Mapped[str] = mapped_column(String(32), default="unmetered", server_default="unmetered")
    trial_ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    current_period_end: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class MerchantBackend(Base):
    """A merchant's own wallet or node connection. Rows are never changed: a new connection of a
    kind retires the previous one, which stays to look up the invoices made through it."""

    __tablename__ = "merchant_backends"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    url_sealed: Mapped[str] = mapped_column(Text)  # the connection URL, encrypted (SecretBox)
    url_shown: Mapped[str] = mapped_column(String(2048))  # the same with its secrets masked
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AccountPayment(Base):
    """A Lightning payment redeemed for an account: a paid signup (which made the merchant) or a
    renewal. Its payment hash is the key, so one payment is redeemed once, whatever the retries."""

    __tablename__ = "account_payments"

    payment_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))  # signup | renewal
    plan_tier: Mapped[str] = mapped_column(String(32))
    amount_sats: Mapped[int] = mapped_column(BigInteger)
    period_end: Mapped[datetime] = mapped_column(UTCDateTime())  # the period end it paid for
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    test_mode: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
