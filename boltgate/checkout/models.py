"""Checkout products: things a merchant sells through a ``/buy/{productId}`` link."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from boltgate.db.base import Base, UTCDateTime


class Product(Base):
    __tablename__ = "checkout_products"
    __table_args__ = (Index("ix_checkout_products_merchant_created", "merchant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    price: Mapped[str] = mapped_column(String(40))  # exact decimal, as payments store amounts
    currency: Mapped[str] = mapped_column(String(8))
    image_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    success_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    cancel_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
