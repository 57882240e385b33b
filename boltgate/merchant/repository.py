"""All SQL of the merchant domain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from boltgate.merchant.models import ApiKey, Merchant


async def add_merchant(session: AsyncSession, merchant: Merchant) -> None:
    session.add(merchant)
    await session.flush()


async def add_key(session: AsyncSession, key: ApiKey) -> None:
    session.add(key)
    await session.flush()


async def get_merchant(session: AsyncSession, merchant_id: str) -> Merchant | None:
    return await session.get(Merchant, merchant_id)


async def list_merchants(session: AsyncSession) -> list[Merchant]:
    return list((await session.scalars(select(Merchant).order_by(Merchant.created_at))).all())


async def find_active_key(session: AsyncSession, key_hash: str) -> tuple[str, str] | None:
    """(merchant_id, key_id) of an unrevoked key of an active merchant, by the key's hash."""
    row = (
        await session.execute(
            select(ApiKey.merchant_id, ApiKey.id)
            .join(Merchant, Merchant.id == ApiKey.merchant_id)
            .where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None), Merchant.is_active.is_(True))
        )
    ).first()
    return (row[0], row[1]) if row else None


async def list_keys(session: AsyncSession, merchant_id: str) -> list[ApiKey]:
    stmt = select(ApiKey).where(ApiKey.merchant_id == merchant_id).order_by(ApiKey.created_at)
    return list((await session.scalars(stmt)).all())


async def revoke_key(session: AsyncSession, merchant_id: str, key_id: str, now: datetime) -> ApiKey | None:
    key = (
        await session.scalars(select(ApiKey).where(ApiKey.id == key_id, ApiKey.merchant_id == merchant_id))
    ).first()
    if key is None:
        return None
    if key.revoked_at is None:
        await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(revoked_at=now))
        key.revoked_at = now
    return key
