"""Dashboard sessions: a random id in a cookie, its SHA-256 in the database, idle and absolute expiry.

The cookie is ``HttpOnly`` (no script reads it), ``SameSite=Lax`` (not sent on cross-site
POSTs) and ``Secure`` when the public URL is https. Every state-changing form also carries a
synchronizer token derived from the session id with the server key (HMAC), so it is bound to
this session, changes with it, and needs no storage. A session ends at sign-out, after
``dashboard_session_idle_seconds`` without a request, ``dashboard_session_max_seconds`` after
sign-in, when the API key it was opened with is revoked, when the address an email link was sent
to stops being the account's, or when the merchant is deactivated.

A form rendered before a server key rotation is still accepted while the old key is in
``BOLTGATE_SECRET_KEY_PREVIOUS`` (the token under each key of the ring is accepted).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from boltgate.config import Settings
from boltgate.dashboard.models import DashboardSession
from boltgate.db.engine import Database
from boltgate.kit.crypto import key_ring
from boltgate.merchant.models import ApiKey, Merchant

COOKIE = "boltgate_dashboard"
LOGIN_COOKIE = "boltgate_dashboard_login"  # the pre-session token of the sign-in forms
PATH = "/dashboard"
TOUCH_EVERY = timedelta(seconds=60)  # last_seen_at is written at most this often


@dataclass(frozen=True, slots=True)
class Signed:
    """The signed-in merchant of a request."""

    merchant_id: str
    merchant_name: str
    token_hash: str
    csrf: str  # what forms carry (the current server key's)
    csrf_previous: tuple[str, ...] = ()  # also accepted: the same under the previous keys

    @property
    def csrf_accepted(self) -> tuple[str, ...]:
        return (self.csrf, *self.csrf_previous)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_all(settings: Settings, token: str) -> tuple[str, ...]:
    """The form tokens of a session (or of a pre-session sign-in cookie), one per key of the
    ring: forms carry the first, any is accepted."""
    keys = key_ring(settings).keys("dashboard-csrf")
    return tuple(hmac.new(key, token.encode(), hashlib.sha256).hexdigest() for key in keys)


def csrf_for(settings: Settings, token: str) -> str:
    """The form token of a session (or of a pre-session sign-in cookie)."""
    return csrf_all(settings, token)[0]


def csrf_ok(settings: Settings, token: str, given: str | None) -> bool:
    return csrf_matches(csrf_all(settings, token), given)


def is_secure(settings: Settings) -> bool:
    return settings.base_url.startswith("https://")


def set_cookie(response: Response, settings: Settings, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PATH,
        httponly=True,
        samesite="lax",
        secure=is_secure(settings),
    )


def clear_cookie(response: Response, settings: Settings, name: str = COOKIE) -> None:
    response.delete_cookie(name, path=PATH, httponly=True, samesite="lax", secure=is_secure(settings))


async def open_session(
    session: AsyncSession,
    settings: Settings,
    merchant_id: str,
    key_id: str | None,
    now: datetime,
    email: str | None = None,
) -> str:
    """A new session; returns its id (the cookie value), which is stored only as a hash."""
    token = new_token()
    session.add(
        DashboardSession(
            token_hash=digest(token),
            merchant_id=merchant_id,
            key_id=key_id,
            email=email,
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(seconds=settings.dashboard_session_max_seconds),
        )
    )
    # a sign-in is a good moment to forget this merchant's ended sessions
    await session.execute(
        delete(DashboardSession).where(
            DashboardSession.merchant_id == merchant_id,
            or_(
                DashboardSession.expires_at <= now,
                DashboardSession.last_seen_at
                <= now - timedelta(seconds=settings.dashboard_session_idle_seconds),
            ),
        )
    )
    await session.flush()
    return token


async def find(db: Database, settings: Settings, token: str | None, now: datetime) -> Signed | None:
    """The live session of a cookie value (touched); None when absent, ended or unknown.

    Read first; a write only to forget an ended session or, once a minute, to note activity."""
    if not token or len(token) > 100:
        return None
    token_hash = digest(token)
    async with db.reading() as session:
        row = (
            await session.execute(
                select(DashboardSession, Merchant.name, Merchant.email, ApiKey.revoked_at)
                .join(Merchant, Merchant.id == DashboardSession.merchant_id)
                .outerjoin(ApiKey, ApiKey.id == DashboardSession.key_id)
                .where(DashboardSession.token_hash == token_hash, Merchant.is_active.is_(True))
            )
        ).first()
    if row is None:
        return None
    found, name, account_email, revoked_at = row
    idle = timedelta(seconds=settings.dashboard_session_idle_seconds)
    key_gone = found.key_id is not None and revoked_at is not None
    email_gone = found.email is not None and found.email != account_email
    if found.expires_at <= now or found.last_seen_at + idle <= now or key_gone or email_gone:
        async with db.writing() as session:
            await close(session, token_hash)
        return None
    if now - found.last_seen_at >= TOUCH_EVERY:
        async with db.writing() as session:
            await session.execute(
                update(DashboardSession)
                .where(DashboardSession.token_hash == token_hash)
                .values(last_seen_at=now)
            )
    accepted = csrf_all(settings, token)
    return Signed(
        merchant_id=found.merchant_id,
        merchant_name=name,
        token_hash=token_hash,
        csrf=accepted[0],
        csrf_previous=accepted[1:],
    )


async def close(session: AsyncSession, token_hash: str) -> None:
    await session.execute(delete(DashboardSession).where(DashboardSession.token_hash == token_hash))


def cookie_of(request: Request) -> str | None:
    return request.cookies.get(COOKIE)


def csrf_matches(expected: str | Sequence[str], given: str | None) -> bool:
    if not given:
        return False
    candidates = (expected,) if isinstance(expected, str) else expected
    return any(hmac.compare_digest(one.encode(), given.encode()) for one in candidates)
