"""Shapes of the merchant and API-key routes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from boltgate.kit.clock import rfc3339
from boltgate.merchant.models import ApiKey


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
