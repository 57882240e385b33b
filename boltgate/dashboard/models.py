"""Dashboard sign-in state: sessions and single-use emailed links (sign-in, address confirmation),
all stored as hashes.

The browser holds the only copy of a session id and the mailbox the only copy of a link's token;
the database keeps their SHA-256, so a leaked database row cannot be replayed as a cookie.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from boltgate.db.base import Base, UTCDateTime

SIGN_IN = "sign_in"
CONFIRM_EMAIL = "confirm_email"


class DashboardSession(Base):
    __tablename__ = "dashboard_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    # the API key signed in with (its revocation ends the session); None: an email link
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # the address an email link was sent to: the session ends when the account's address changes
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())  # absolute end, whatever the activity


class DashboardLoginLink(Base):
    __tablename__ = "dashboard_login_links"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # "sign_in" (signs in while `email` is still the account's address) or "confirm_email" (makes
    # `email` the account's address, if the API key `key_id` that asked is still live)
    purpose: Mapped[str] = mapped_column(String(16), default=SIGN_IN, server_default=SIGN_IN)
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
