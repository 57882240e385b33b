"""Dashboard sessions: a random id in a cookie, its SHA-256 in the database, idle and absolute expiry.

The cookie is ``HttpOnly`` (no script reads it), ``SameSite=Lax`` (not sent on cross-site
POSTs) and ``Secure`` when the public URL is https. Every state-changing form also carries a
synchronizer token derived from the session id with the server key (HMAC), so it is bound to
this session, changes with it, and needs no storage. A session ends at sign-out, after
``dashboard_session_idle_seconds`` without a request, ``dashboard_session_max_seconds`` after
sign-in, when the API key it was opened with is revoked, when the address an email link was sent
to stops being the account's, or when the merchant is deactivated.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from boltgate.config import Settings
from boltgate.dashboard.models import DashboardSession
from boltgate.db.engine import Database
from boltgate.kit.crypto import derive_key
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
    csrf: str


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


@lru_cache(maxsize=4)
def _csrf_key(server_secret: str) -> bytes:
    return derive_key(server_secret, "dashboard-csrf")


def csrf_for(settings: Settings, token: str) -> str:
    """The form token of a session (or of a pre-session sign-in cookie)."""
    key = _csrf_key(settings.secret_key.get_secret_value())
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()


def csrf_ok(settings: Settings, token: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(csrf_for(settings, token), given or "")


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
    return Signed(
        merchant_id=found.merchant_id,
        merchant_name=name,
        token_hash=token_hash,
        csrf=csrf_for(settings, token),
    )


async def close(session: AsyncSession, token_hash: str) -> None:
    await session.execute(delete(DashboardSession).where(DashboardSession.token_hash == token_hash))


def cookie_of(request: Request) -> str | None:
    return request.cookies.get(COOKIE)


def csrf_matches(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())
