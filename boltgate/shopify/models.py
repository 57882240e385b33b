"""What the Shopify channel keeps: connected stores, their cached catalogs, the orders sold for
Lightning and the Shopify webhook deliveries already handled.

Secrets (the Admin API access token, the app's client secret) are sealed with the server key
(``kit/crypto.SecretBox``). An order's money lives on its payment (``payments``); the order keeps
what was quoted (USD amounts as decimal strings, the items) and what Shopify made of it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from boltgate.db.base import Base, UTCDateTime


class ShopifyStore(Base):
    __tablename__ = "shopify_stores"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    shop_domain: Mapped[str] = mapped_column(String(255))
    store_name: Mapped[str] = mapped_column(String(200))
    access_token: Mapped[str | None] = mapped_column(Text, nullable=True)  # sealed
    client_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    client_secret: Mapped[str | None] = mapped_column(Text, nullable=True)  # sealed
    webhook_secret: Mapped[str | None] = mapped_column(Text, nullable=True)  # sealed
    shipping: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"groups": [...]} (see schemas.Shipping)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ShopifyCatalog(Base):
    """A store's catalog as last read from Shopify (shared by replicas; webhooks mark it stale)."""

    __tablename__ = "shopify_catalogs"

    store_id: Mapped[str] = mapped_column(
        ForeignKey("shopify_stores.id", ondelete="CASCADE"), primary_key=True
    )
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime())
    stale: Mapped[bool] = mapped_column(Boolean, default=False)


class ShopifyOrder(Base):
    __tablename__ = "shopify_orders"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # shpfy_…
    store_id: Mapped[str] = mapped_column(ForeignKey("shopify_stores.id", ondelete="CASCADE"), index=True)
    merchant_id: Mapped[str] = mapped_column(String(32), index=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"), unique=True)
    payment_hash: Mapped[str] = mapped_column(String(64), unique=True)
    claim_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    subtotal_usd: Mapped[str] = mapped_column(String(20))
    shipping_usd: Mapped[str] = mapped_column(String(20))
    total_usd: Mapped[str] = mapped_column(String(20))
    amount_sats: Mapped[int] = mapped_column(BigInteger)
    shipping_group: Mapped[str] = mapped_column(String(64))  # the group the shipping was quoted for
    # open → claiming → ordered → shipped | cancelled; "open" orders take their status from the payment
    state: Mapped[str] = mapped_column(String(16), default="open")
    claim_attempts: Mapped[int] = mapped_column(Integer, default=0)
    claim_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    shipping_address: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    shopify_order_id: Mapped[str | None] = mapped_column(String(100), nullable=True, index=True)
    shopify_order_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    status_page_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    flags: Mapped[str] = mapped_column(Text, default="")  # newline-separated: price_changed, out_of_stock
    last_error: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    tracking_number: Mapped[str | None] = mapped_column(String(200), nullable=True)
    tracking_carrier: Mapped[str | None] = mapped_column(String(200), nullable=True)
    tracking_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    tracking_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    shipped_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ShopifyWebhookReceipt(Base):
    """A Shopify webhook delivery handled once: Shopify retries, and the id repeats with it."""

    __tablename__ = "shopify_webhook_receipts"

    store_id: Mapped[str] = mapped_column(
        ForeignKey("shopify_stores.id", ondelete="CASCADE"), primary_key=True
    )
    webhook_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    topic: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
