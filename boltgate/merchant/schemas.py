"""Shapes of the merchant and API-key routes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from boltgate.kit.clock import rfc3339
from boltgate.merchant.models import ApiKey, Merchant


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
