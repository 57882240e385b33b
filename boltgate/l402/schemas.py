"""Shapes of the L402 producer API and the paid-content API."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator

from boltgate.payment.schemas import multiline, printable

_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?$")
RESERVED_SLUGS = frozenset({"bundle"})
MAX_PRICE_SATS = 100_000_000


class ChallengeCreate(BaseModel):
    """Body of ``POST /api/l402/challenges``."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    resource: str = Field(min_length=1, max_length=1000, description="what the token opens (your id or URL)")
    priceSats: StrictInt = Field(ge=1, le=MAX_PRICE_SATS)
    description: str | None = Field(None, max_length=200)

    @field_validator("resource", "description")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return printable(value, 1000)

    @field_validator("resource")
    @classmethod
    def _resource(cls, value: str) -> str:
        if "," in value:
            raise ValueError("must not contain ','")
        return value


class ChallengeOut(BaseModel):
    invoice: str
    macaroon: str = Field(description="standard base64")
    paymentHash: str
    expiresAt: datetime
    resource: str
    priceSats: int
    mppChallenge: str = Field(description="the WWW-Authenticate: Payment value for the same invoice")


class VerifyIn(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    macaroon: str | None = Field(None, max_length=16384)
    preimage: str = Field(max_length=200)


class VerifyOut(BaseModel):
    valid: bool
    resource: str | None
    merchantId: str | None
    amountSats: int | None
    paymentHash: str | None
    error: str | None = None


class ChallengeItem(BaseModel):
    paymentHash: str
    resource: str
    amountSats: int
    status: Literal["pending", "paid", "expired"]
    createdAt: datetime
    paidAt: datetime | None
    expiresAt: datetime
    idempotencyKey: str | None


class ChallengeList(BaseModel):
    challenges: list[ChallengeItem]
    total: int
    limit: int
    offset: int


class ContentCreate(BaseModel):
    """Body of ``POST /api/l402/items``: text in ``body``, or a file as base64 in ``fileBase64``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    slug: str = Field(min_length=1, max_length=100, description="lower-case letters, digits and '-'")
    title: str = Field(min_length=1, max_length=200)
    teaser: str | None = Field(None, max_length=2000)
    body: str | None = Field(None, max_length=1_000_000)
    fileBase64: str | None = Field(None, max_length=2_000_000)
    fileName: str | None = Field(None, max_length=200)
    contentType: str = Field("text/markdown; charset=utf-8", max_length=100)
    priceSats: StrictInt = Field(ge=1, le=MAX_PRICE_SATS)
    active: StrictBool = True

    @field_validator("slug")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _SLUG.match(value) or value in RESERVED_SLUGS:
            raise ValueError("must be lower-case letters, digits and '-' (and not 'bundle')")
        return value

    @field_validator("title", "fileName", "contentType")
    @classmethod
    def _line(cls, value: str | None) -> str | None:
        return printable(value, 200)

    @field_validator("teaser", "body")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return multiline(value)


class ContentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str | None = Field(None, min_length=1, max_length=200)
    teaser: str | None = Field(None, max_length=2000)
    body: str | None = Field(None, max_length=1_000_000)
    priceSats: StrictInt | None = Field(None, ge=1, le=MAX_PRICE_SATS)
    active: StrictBool | None = None

    @field_validator("title")
    @classmethod
    def _line(cls, value: str | None) -> str | None:
        return printable(value, 200)

    @field_validator("teaser", "body")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return multiline(value)
