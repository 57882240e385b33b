"""Merchants and API keys: keys are generated here, shown once, and only their hash is kept."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from boltgate.dashboard.auth import end_email_sign_in
from boltgate.errors import NotFound, ValidationFailed
from boltgate.kit.clock import Clock, utcnow
from boltgate.kit.ids import hash_api_key, new_api_key, new_id
from boltgate.merchant import repository
from boltgate.merchant.models import ApiKey, Merchant
from boltgate.merchant.schemas import MerchantUpdate


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key: ``secret`` exists only in this object and is never stored."""

    key: ApiKey
    secret: str


def _clean_name(name: str, field: str, limit: int) -> str:
    name = name.strip()
    if not name or len(name) > limit or any(ord(ch) < 32 for ch in name):
        raise ValidationFailed(
            f"{field} must be 1 to {limit} printable characters",
            errors={field: [f"must be 1 to {limit} printable characters"]},
        )
    return name


async def create_merchant(
    session: AsyncSession, name: str, *, clock: Clock = utcnow
) -> tuple[Merchant, IssuedKey]:
    merchant = Merchant(
        id=new_id("mch"), name=_clean_name(name, "name", 200), is_active=True, created_at=clock()
    )
    await repository.add_merchant(session, merchant)
    issued = await create_key(session, merchant.id, "default", clock=clock)
    return merchant, issued


async def update_merchant(
    session: AsyncSession, merchant_id: str, body: MerchantUpdate
) -> tuple[Merchant, str | None]:
    """The changed merchant, and the address to send a confirmation link to (a new ``email`` is
    pending until confirmed: ``boltgate.dashboard.auth``); ``null`` removes both at once."""
    merchant = await repository.get_merchant(session, merchant_id)
    if merchant is None:
        raise NotFound(f"merchant {merchant_id} not found", code="merchant_not_found")
    given = body.model_fields_set
    if "name" in given:
        if body.name is None:
            raise ValidationFailed("name cannot be null", errors={"name": ["cannot be null"]})
        merchant.name = _clean_name(body.name, "name", 200)
    if "logoUrl" in given:
        merchant.logo_url = body.logoUrl
    if "checkoutFrameAncestors" in given:
        merchant.frame_ancestors = body.checkoutFrameAncestors
    to_confirm = None
    if "email" in given:
        if body.email is None:
            merchant.email = merchant.email_pending = merchant.email_key_id = None
        elif body.email == merchant.email:
            merchant.email_pending = None  # back to the confirmed address: nothing to confirm
        else:
            merchant.email_pending = to_confirm = body.email
    await session.flush()
    return merchant, to_confirm


async def create_key(
    session: AsyncSession,
    merchant_id: str,
    name: str = "default",
    *,
    test: bool = False,
    clock: Clock = utcnow,
) -> IssuedKey:
    if await repository.get_merchant(session, merchant_id) is None:
        raise NotFound(f"merchant {merchant_id} not found", code="merchant_not_found")
    secret = new_api_key(test=test)
    key = ApiKey(
        id=new_id("key", 16),
        merchant_id=merchant_id,
        name=_clean_name(name, "name", 100),
        key_hash=hash_api_key(secret),
        prefix=secret[:12],
        test_mode=test,
        created_at=clock(),
    )
    await repository.add_key(session, key)
    return IssuedKey(key=key, secret=secret)


async def revoke_key(
    session: AsyncSession, merchant_id: str, key_id: str, *, clock: Clock = utcnow
) -> ApiKey:
    """Revoke a key; the email address it set stops signing in (``end_email_sign_in``)."""
    key = await repository.revoke_key(session, merchant_id, key_id, clock())
    if key is None:
        raise NotFound(f"API key {key_id} not found", code="api_key_not_found")
    await end_email_sign_in(session, merchant_id, key_id)
    return key
