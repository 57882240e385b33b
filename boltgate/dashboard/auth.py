"""Signing in to the dashboard: with an API key, or with a single-use link sent by email; and
confirming the address those links go to.

A sign-in link's token lives 15 minutes and is stored as its SHA-256; using it is one conditional
update, so two clicks (or a mail scanner and a person) cannot both sign in with it. The page a
link opens asks for a click before using it, since scanners fetch links in emails. A link signs
in only while the address it was sent to is still the account's.

An address set through the API is pending until its owner follows a confirmation link (24 hours,
single use) sent to it: nobody can point an account's sign-in at an address they do not read, or
send sign-in mail to someone else's. The confirmation records the API key that asked; revoking
that key takes the address off the account (``end_email_sign_in``), which ends its sign-ins and
the sessions they opened, so a former key holder cannot keep a way in through their mailbox.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from boltgate.dashboard.models import CONFIRM_EMAIL, SIGN_IN, DashboardLoginLink
from boltgate.dashboard.session import digest, new_token
from boltgate.kit.ids import hash_api_key
from boltgate.merchant import repository
from boltgate.merchant.models import ApiKey, Merchant
from boltgate.merchant.schemas import EMAIL

LINK_LIFETIME = timedelta(minutes=15)
CONFIRM_LIFETIME = timedelta(hours=24)
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
    """One new sign-in link token per active merchant of this (confirmed) email: (name, token)."""
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
                purpose=SIGN_IN,
                email=email,
                created_at=now,
                expires_at=now + LINK_LIFETIME,
            )
        )
        issued.append((name, token))
    await session.flush()
    return issued


def _usable(token_hash: str, purpose: str, now: datetime) -> list[Any]:
    conditions: list[Any] = [
        DashboardLoginLink.token_hash == token_hash,
        DashboardLoginLink.purpose == purpose,
        DashboardLoginLink.used_at.is_(None),
        DashboardLoginLink.expires_at > now,
        Merchant.is_active.is_(True),
    ]
    if purpose == SIGN_IN:
        conditions.append(Merchant.email == DashboardLoginLink.email)
    return conditions


async def peek_link(
    session: AsyncSession, token: str, now: datetime, purpose: str = SIGN_IN
) -> tuple[str, str | None] | None:
    """The (account name, address) a usable link is for, without using it: the page shows them,
    so nobody signs in to (or confirms an address for) an account they did not mean to."""
    if not token or len(token) > 100:
        return None
    found = (
        await session.execute(
            select(Merchant.name, DashboardLoginLink.email)
            .join(DashboardLoginLink, DashboardLoginLink.merchant_id == Merchant.id)
            .where(*_usable(digest(token), purpose, now))
        )
    ).first()
    return None if found is None else (str(found[0]), found[1])


async def _use(session: AsyncSession, token: str, purpose: str, now: datetime) -> DashboardLoginLink | None:
    """Mark a usable link used (one conditional update: a second click finds it used)."""
    if not token or len(token) > 100:
        return None
    token_hash = digest(token)
    link = (
        await session.execute(
            select(DashboardLoginLink)
            .join(Merchant, Merchant.id == DashboardLoginLink.merchant_id)
            .where(*_usable(token_hash, purpose, now))
        )
    ).scalar_one_or_none()
    if link is None:
        return None
    used = await session.execute(
        update(DashboardLoginLink)
        .where(DashboardLoginLink.token_hash == token_hash, DashboardLoginLink.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return link if getattr(used, "rowcount", 0) == 1 else None


async def use_link(session: AsyncSession, token: str, now: datetime) -> tuple[str, str] | None:
    """(merchant id, address) a sign-in link signs in, marking it used; None if unknown, used,
    expired, or sent to an address that is no longer the account's."""
    link = await _use(session, token, SIGN_IN, now)
    return None if link is None or link.email is None else (link.merchant_id, link.email)


async def issue_confirmation(
    session: AsyncSession, merchant_id: str, email: str, key_id: str | None, now: datetime
) -> str:
    """A confirmation link token for ``email``; the merchant's earlier unused ones stop working."""
    await session.execute(
        delete(DashboardLoginLink).where(
            DashboardLoginLink.merchant_id == merchant_id,
            DashboardLoginLink.purpose == CONFIRM_EMAIL,
            DashboardLoginLink.used_at.is_(None),
        )
    )
    token = new_token()
    session.add(
        DashboardLoginLink(
            token_hash=digest(token),
            merchant_id=merchant_id,
            purpose=CONFIRM_EMAIL,
            email=email,
            key_id=key_id,
            created_at=now,
            expires_at=now + CONFIRM_LIFETIME,
        )
    )
    await session.flush()
    return token


async def confirm_email(session: AsyncSession, token: str, now: datetime) -> tuple[str, str] | None:
    """Use a confirmation link: its address becomes the account's sign-in address. (merchant id,
    address), or None when the link is unusable, its key was revoked since, or the account has
    asked for another address after it was sent."""
    link = await _use(session, token, CONFIRM_EMAIL, now)
    if link is None or link.email is None:
        return None
    if link.key_id is not None:
        revoked = await session.scalar(select(ApiKey.revoked_at).where(ApiKey.id == link.key_id))
        if revoked is not None:
            return None
    changed = await session.execute(
        update(Merchant)
        .where(Merchant.id == link.merchant_id, Merchant.email_pending == link.email)
        .values(email=link.email, email_key_id=link.key_id, email_pending=None)
        .execution_options(synchronize_session=False)
    )
    return (link.merchant_id, link.email) if getattr(changed, "rowcount", 0) == 1 else None


async def end_email_sign_in(session: AsyncSession, merchant_id: str, key_id: str) -> bool:
    """When API key ``key_id`` is revoked: the address it set (or asked for) leaves the account.
    Its sign-in links and sessions end with it (they hold the address, which no longer matches)."""
    cleared = await session.execute(
        update(Merchant)
        .where(Merchant.id == merchant_id, Merchant.email_key_id == key_id)
        .values(email=None, email_key_id=None)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        delete(DashboardLoginLink).where(
            DashboardLoginLink.merchant_id == merchant_id,
            DashboardLoginLink.purpose == CONFIRM_EMAIL,
            DashboardLoginLink.key_id == key_id,
            DashboardLoginLink.used_at.is_(None),
        )
    )
    return getattr(cleared, "rowcount", 0) == 1
