"""Signing in to the dashboard: with an API key, or with a single-use link sent by email.

A link's token lives 15 minutes and is stored as its SHA-256; using it is one conditional
update, so two clicks (or a mail scanner and a person) cannot both sign in with it. The page a
link opens asks for a click before using it, since scanners fetch links in emails.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from boltgate.dashboard.models import DashboardLoginLink
from boltgate.dashboard.session import digest, new_token
from boltgate.kit.ids import hash_api_key
from boltgate.merchant import repository
from boltgate.merchant.models import Merchant
from boltgate.merchant.schemas import EMAIL

LINK_LIFETIME = timedelta(minutes=15)
MAX_MERCHANTS_PER_EMAIL = 10


async def check_key(session: AsyncSession, api_key: str) -> tuple[str, str] | None:
    """(merchant_id, key_id) of a live key of an active merchant."""
    api_key = api_key.strip()
    if not api_key or len(api_key) > 200:
        return None
    return await repository.find_active_key(session, hash_api_key(api_key))


def clean_email(value: str) -> str | None:
    value = value.strip()
    return value.lower() if len(value) <= 254 and EMAIL.match(value) else None


async def issue_links(session: AsyncSession, email: str, now: datetime) -> list[tuple[str, str]]:
    """One new link token per active merchant of this email: (merchant name, token)."""
    merchants = (
        await session.execute(
            select(Merchant.id, Merchant.name)
            .where(Merchant.email == email, Merchant.is_active.is_(True))
            .order_by(Merchant.created_at)
            .limit(MAX_MERCHANTS_PER_EMAIL)
        )
    ).all()
    issued = []
    for merchant_id, name in merchants:
        token = new_token()
        session.add(
            DashboardLoginLink(
                token_hash=digest(token),
                merchant_id=merchant_id,
                created_at=now,
                expires_at=now + LINK_LIFETIME,
            )
        )
        issued.append((name, token))
    await session.flush()
    return issued


async def peek_link(session: AsyncSession, token: str, now: datetime) -> tuple[str, str | None] | None:
    """The (name, email) of the account a usable link signs in to, without using the link: the
    page shows it, so nobody signs in to an account someone else's link opens by mistake."""
    if not token or len(token) > 100:
        return None
    found = (
        await session.execute(
            select(Merchant.name, Merchant.email)
            .join(DashboardLoginLink, DashboardLoginLink.merchant_id == Merchant.id)
            .where(
                DashboardLoginLink.token_hash == digest(token),
                DashboardLoginLink.used_at.is_(None),
                DashboardLoginLink.expires_at > now,
                Merchant.is_active.is_(True),
            )
        )
    ).first()
    return None if found is None else (str(found[0]), found[1])


async def use_link(session: AsyncSession, token: str, now: datetime) -> str | None:
    """The merchant a link signs in, marking it used; None if unknown, used or expired."""
    if not token or len(token) > 100:
        return None
    token_hash = digest(token)
    used = await session.execute(
        update(DashboardLoginLink)
        .where(
            DashboardLoginLink.token_hash == token_hash,
            DashboardLoginLink.used_at.is_(None),
            DashboardLoginLink.expires_at > now,
        )
        .values(used_at=now)
    )
    if getattr(used, "rowcount", 0) != 1:
        return None
    merchant_id = await session.scalar(
        select(DashboardLoginLink.merchant_id)
        .join(Merchant, Merchant.id == DashboardLoginLink.merchant_id)
        .where(DashboardLoginLink.token_hash == token_hash, Merchant.is_active.is_(True))
    )
    return merchant_id
