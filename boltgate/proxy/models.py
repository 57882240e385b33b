"""What the paid proxy keeps: proxies, their priced endpoints and per-day usage counters.

A proxy is soft-retired (``retired_at``) by unpublishing: its URLs then answer 410 and it leaves
the registry, while its history (challenges, usage) stays. Deleting removes it and its endpoints.
Revenue is not stored here: it is the sum of the paid challenges whose resource names the proxy.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from boltgate.db.base import Base, UTCDateTime


class Proxy(Base):
    __tablename__ = "proxies"
    __table_args__ = (Index("ix_proxies_listed", "manifest_listed", "retired_at", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    target_base_url: Mapped[str] = mapped_column(String(2048))
    default_price_sats: Mapped[int] = mapped_column(BigInteger)
    token_ttl_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_calls_per_token: Mapped[int | None] = mapped_column(Integer, nullable=True)
    manifest_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    manifest_listed: Mapped[bool] = mapped_column(Boolean, default=False)
    service_description: Mapped[str | None] = mapped_column(Text, nullable=True)
    categories: Mapped[str] = mapped_column(Text, default="")  # newline-separated
    # for the registry's search, case-folded in Python (SQLite's lower() folds ASCII only):
    # name, descriptions and categories one per line; and "\n<category>\n…" for whole-line matches
    search_text: Mapped[str] = mapped_column(Text, default="")
    category_keys: Mapped[str] = mapped_column(Text, default="\n")
    documentation_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    retire_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ProxyEndpoint(Base):
    __tablename__ = "proxy_endpoints"
    __table_args__ = (UniqueConstraint("proxy_id", "http_method", "path"),)

    proxy_id: Mapped[str] = mapped_column(ForeignKey("proxies.id", ondelete="CASCADE"), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    path: Mapped[str] = mapped_column(String(1000))
    http_method: Mapped[str] = mapped_column(String(8))
    price_sats: Mapped[int] = mapped_column(BigInteger)
    summary: Mapped[str | None] = mapped_column(String(500), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    tags: Mapped[str] = mapped_column(Text, default="")  # newline-separated
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ProxyUsage(Base):
    """Requests per proxy, endpoint (``*``: the default price) and UTC day, summed across replicas."""

    __tablename__ = "proxy_usage"

    # no foreign key: counts flushed a moment after a proxy is deleted must not fail the flush
    proxy_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    endpoint_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_requests: Mapped[int] = mapped_column(BigInteger, default=0)
    challenged: Mapped[int] = mapped_column(BigInteger, default=0)  # answered 402
    upstream_errors: Mapped[int] = mapped_column(BigInteger, default=0)  # 502/504 of ours
