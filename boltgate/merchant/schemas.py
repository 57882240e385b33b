"""Shapes of the merchant and API-key routes."""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from boltgate.kit.clock import rfc3339
from boltgate.merchant.models import ApiKey, Merchant

EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field("default", min_length=1, max_length=100)
    testMode: StrictBool = False


class MerchantCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=1, max_length=200)


class KeyOut(BaseModel):
    id: str
    name: str
    prefix: str = Field(description="the first characters of the key, to recognise it")
    testMode: bool
    createdAt: datetime
    revokedAt: datetime | None


class IssuedKeyOut(KeyOut):
    apiKey: str = Field(description="the key itself: shown this once, stored only as a hash")


class KeyList(BaseModel):
    items: list[KeyOut]
    total: int


class MerchantCreated(BaseModel):
    merchantId: str
    name: str
    apiKey: str
    keyId: str


class MerchantMe(BaseModel):
    merchantId: str
    name: str
    isActive: bool
    createdAt: datetime
    logoUrl: str | None = Field(description="shown on the checkout page")
    checkoutFrameAncestors: list[str] | None = Field(
        description="origins that may embed the checkout page (null: the server's default)"
    )
    paymentProvider: str = Field(
        "gateway", description="where invoices are made: gateway, or a connection of yours (nwc…)"
    )
    email: str | None = Field(None, description="where dashboard sign-in links go (a confirmed address)")
    emailPending: str | None = Field(
        None, description="an address set through the API, waiting for its owner to confirm the emailed link"
    )
    planTier: str = Field(description="your plan; unmetered: an account the operator made, no period")
    subscriptionStatus: str = Field(description="active, trialing or expired")
    trialEndsAt: datetime | None
    currentPeriodEnd: datetime | None = Field(description="when the paid (or trial) period ends; null: never")
    features: Features
    onboarding: Onboarding


class Features(BaseModel):
    l402Enabled: bool


class Onboarding(BaseModel):
    hasNwcConnection: bool
    hasStrikeKey: bool
    hasOpenNodeKey: bool
    isFullyConfigured: bool = Field(description="invoices go to a real wallet (yours, or the gateway's)")
    proxyCount: int = Field(description="L402 proxies not retired")
    hasActiveProxy: bool


class MerchantUpdate(BaseModel):
    """Body of ``PATCH /api/merchant/me``: the fields given change."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(None, min_length=1, max_length=200)
    logoUrl: str | None = Field(None, max_length=2048, description="https URL of a square logo")
    checkoutFrameAncestors: list[str] | None = Field(
        None,
        max_length=20,
        description="origins like https://shop.example that may frame the checkout page; "
        "[] forbids framing, null falls back to the server's default",
    )

    email: str | None = Field(
        None,
        max_length=254,
        description="where dashboard sign-in links should go: a new address stays emailPending until "
        "the link emailed to it is followed (needs SMTP); null removes the address at once",
    )

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not EMAIL.match(value):
            raise ValueError("must be an email address like shop@example.com")
        return value.lower()

    @field_validator("logoUrl")
    @classmethod
    def _logo(cls, value: str | None) -> str | None:
        from boltgate.checkout.schemas import https_url

        return https_url(value)

    @field_validator("checkoutFrameAncestors")
    @classmethod
    def _ancestors(cls, value: list[str] | None) -> list[str] | None:
        from boltgate.checkout.security import check_origin

        return None if value is None else [check_origin(origin) for origin in value]


def merchant_out(merchant: Merchant) -> dict[str, object]:
    return {
        "merchantId": merchant.id,
        "name": merchant.name,
        "isActive": merchant.is_active,
        "createdAt": rfc3339(merchant.created_at),
        "logoUrl": merchant.logo_url,
        "checkoutFrameAncestors": merchant.frame_ancestors,
        "paymentProvider": merchant.payment_provider or "gateway",
        "email": merchant.email,
        "emailPending": merchant.email_pending,
    }


def key_out(key: ApiKey, secret: str | None = None) -> dict[str, object]:
    data: dict[str, object] = {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "testMode": key.test_mode,
        "createdAt": rfc3339(key.created_at),
        "revokedAt": rfc3339(key.revoked_at),
    }
    if secret is not None:
        data["apiKey"] = secret
    return data
