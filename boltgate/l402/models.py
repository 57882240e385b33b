"""What L402 and the Payment scheme keep: root keys, challenges (one per invoice) and paid content.

A macaroon's root key is random and lives only here (sealed with the server key); deleting it
revokes every token minted with it. A challenge row records each invoice issued behind a 402 or
through the producer API; its ``spent_at`` makes a Payment-scheme credential single-use.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from boltgate.db.base import Base, UTCDateTime


class RootKey(Base):
    __tablename__ = "l402_root_keys"

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)  # hex sha256(identifier)
    sealed_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Challenge(Base):
    __tablename__ = "l402_challenges"
    __table_args__ = (
        Index("ix_l402_challenges_merchant_created", "merchant_id", "created_at"),
        Index("ix_l402_challenges_offer", "merchant_id", "resource", "amount_sats", "created_at"),
    )

    payment_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    # NULL: the gateway's own paid routes (demo, test ping); otherwise the merchant who sells
    merchant_id: Mapped[str | None] = mapped_column(
        ForeignKey("merchants.id", ondelete="CASCADE"), nullable=True
    )
    resource: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(String(500), nullable=True)
    amount_sats: Mapped[int] = mapped_column(BigInteger)
    invoice: Mapped[str] = mapped_column(Text)
    token_id: Mapped[str] = mapped_column(String(64))
    caveats: Mapped[str] = mapped_column(Text)  # newline-separated, as minted
    payer: Mapped[str | None] = mapped_column(String(64), nullable=True)  # offer reuse key (test ping)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    spent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # calls an L402 token of this challenge may make (NULL: unlimited until it expires), and made
    max_uses: Mapped[int | None] = mapped_column(Integer, nullable=True)
    uses: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ContentItem(Base):
    """Something a merchant sells per view: text (``body``) or a file (``file_data``)."""

    __tablename__ = "l402_content"
    __table_args__ = (UniqueConstraint("slug"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    slug: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(200))
    teaser: Mapped[str | None] = mapped_column(Text, nullable=True)
    body: Mapped[str | None] = mapped_column(Text, nullable=True)
    file_data: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    file_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    content_type: Mapped[str] = mapped_column(String(100))
    price_sats: Mapped[int] = mapped_column(BigInteger)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
