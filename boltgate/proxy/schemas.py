"""Shapes of the proxy producer API (camelCase, as the Lightning Enable clients send and read them).

``PUT`` bodies are partial: only the fields given change (the clients rename a proxy by sending
``{"name": …}`` alone); an explicit ``null`` clears an optional field.
"""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator

from boltgate.l402.schemas import MAX_PRICE_SATS
from boltgate.payment.schemas import http_url, multiline, printable
from boltgate.proxy import pricing

_ENDPOINT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_TTL_SECONDS = 365 * 86400


def _line(value: str | None) -> str | None:
    return printable(value, 500)


def _labels(values: list[str] | None, limit: int) -> list[str] | None:
    """Trimmed, non-empty, printable, without duplicates (first spelling kept), order kept."""
    if values is None:
        return None
    seen: dict[str, str] = {}
    for raw in values:
        value = raw.strip()
        if not value or len(value) > limit:
            raise ValueError(f"each entry must be 1 to {limit} characters")
        printable(value, limit)
        if "\n" in value or "," in value:
            raise ValueError("entries must not contain ',' or line breaks")
        seen.setdefault(value.lower(), value)
    return list(seen.values())


class _ProxyFields(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    @field_validator("name", check_fields=False)
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return printable(value, 200)

    @field_validator("description", check_fields=False)
    @classmethod
    def _description(cls, value: str | None) -> str | None:
        return multiline(value)


class ProxyCreate(_ProxyFields):
    """Body of ``POST /api/proxy``."""

    name: str = Field(min_length=1, max_length=200)
    targetBaseUrl: str = Field(min_length=1, max_length=2048, description="http(s) URL the proxy forwards to")
    defaultPriceSats: StrictInt = Field(
        ge=0, le=MAX_PRICE_SATS, description="price of a request no endpoint prices (0: free)"
    )
    description: str | None = Field(None, max_length=4000)
    tokenTtlSeconds: StrictInt | None = Field(
        None,
        ge=60,
        le=MAX_TTL_SECONDS,
        description="how long a paid L402 token works (default: the gateway's)",
    )
    maxCallsPerToken: StrictInt | None = Field(
        None, ge=1, le=1_000_000_000, description="calls one paid L402 token may make (default: unlimited)"
    )


class ProxyUpdate(_ProxyFields):
    """Body of ``PUT /api/proxy/{proxyId}``: any subset of the fields of a proxy."""

    name: str | None = Field(None, min_length=1, max_length=200)
    targetBaseUrl: str | None = Field(None, min_length=1, max_length=2048)
    defaultPriceSats: StrictInt | None = Field(None, ge=0, le=MAX_PRICE_SATS)
    description: str | None = Field(None, max_length=4000)
    tokenTtlSeconds: StrictInt | None = Field(None, ge=60, le=MAX_TTL_SECONDS)
    maxCallsPerToken: StrictInt | None = Field(None, ge=1, le=1_000_000_000)


class _EndpointFields(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    @field_validator("path", check_fields=False)
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return None if value is None else pricing.parse_pattern(value)

    @field_validator("httpMethod", check_fields=False)
    @classmethod
    def _method(cls, value: str | None) -> str | None:
        return None if value is None else pricing.normalize_method(value)

    @field_validator("summary", check_fields=False)
    @classmethod
    def _summary(cls, value: str | None) -> str | None:
        return _line(value)

    @field_validator("description", check_fields=False)
    @classmethod
    def _description(cls, value: str | None) -> str | None:
        return multiline(value)

    @field_validator("tags", check_fields=False)
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        return _labels(value, 50)


class EndpointCreate(_EndpointFields):
    """Body of ``POST /api/proxy/{proxyId}/manifest/endpoints``."""

    endpointId: str = Field(min_length=1, max_length=64, description="your id: letters, digits, . _ -")
    path: str = Field(min_length=1, max_length=1000, description="/forecast/{city}; a last * takes the rest")
    httpMethod: str = Field(
        "GET", max_length=8, description="GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS or *"
    )
    basePriceSats: StrictInt = Field(ge=0, le=MAX_PRICE_SATS, description="price per request (0: free)")
    summary: str | None = Field(None, max_length=500)
    description: str | None = Field(None, max_length=4000)
    tags: list[str] | None = Field(None, max_length=20)

    @field_validator("endpointId")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _ENDPOINT_ID.match(value):
            raise ValueError("must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        return value


class EndpointUpdate(_EndpointFields):
    """Body of ``PUT /api/proxy/{proxyId}/manifest/endpoints/{endpointId}``."""

    path: str | None = Field(None, min_length=1, max_length=1000)
    httpMethod: str | None = Field(None, max_length=8)
    basePriceSats: StrictInt | None = Field(None, ge=0, le=MAX_PRICE_SATS)
    summary: str | None = Field(None, max_length=500)
    description: str | None = Field(None, max_length=4000)
    tags: list[str] | None = Field(None, max_length=20)


class ManifestSettings(BaseModel):
    """Body of ``PUT /api/proxy/{proxyId}/manifest/settings`` (partial, like every PUT here)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    manifestEnabled: StrictBool | None = Field(None, description="serve the discovery manifest")
    manifestPubliclyListed: StrictBool | None = Field(
        None, description="list the proxy in the public registry"
    )
    serviceDescription: str | None = Field(None, max_length=4000)
    categories: list[str] | None = Field(None, max_length=20)
    documentationUrl: str | None = Field(None, max_length=2048)

    @field_validator("serviceDescription")
    @classmethod
    def _description(cls, value: str | None) -> str | None:
        return multiline(value)

    @field_validator("categories")
    @classmethod
    def _categories(cls, value: list[str] | None) -> list[str] | None:
        return _labels(value, 50)

    @field_validator("documentationUrl")
    @classmethod
    def _docs(cls, value: str | None) -> str | None:
        return http_url(value)


class Unpublish(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    reason: str | None = Field(None, max_length=500)

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str | None) -> str | None:
        return _line(value)


class EndpointOut(BaseModel):
    endpointId: str
    path: str
    httpMethod: str
    basePriceSats: int
    summary: str | None
    description: str | None
    tags: list[str]
    paidUrl: str = Field(description="relative: /l402/proxy/{proxyId}{path}")
    createdAt: datetime
    updatedAt: datetime


class ProxyOut(BaseModel):
    proxyId: str
    name: str
    description: str | None
    targetBaseUrl: str
    defaultPriceSats: int
    proxyUrl: str = Field(description="relative: /l402/proxy/{proxyId}")
    tokenTtlSeconds: int | None
    maxCallsPerToken: int | None
    manifestEnabled: bool
    manifestPubliclyListed: bool
    serviceDescription: str | None
    categories: list[str]
    documentationUrl: str | None
    manifestUrl: str = Field(description="relative")
    openApiUrl: str = Field(description="relative")
    retired: bool
    retiredAt: datetime | None
    retireReason: str | None
    endpoints: list[EndpointOut]
    createdAt: datetime
    updatedAt: datetime


class ProxyList(BaseModel):
    items: list[ProxyOut]
    total: int


class SettingsOut(BaseModel):
    proxyId: str
    manifestEnabled: bool
    manifestPubliclyListed: bool
    serviceDescription: str | None
    categories: list[str]
    documentationUrl: str | None
    manifestUrl: str


class UnpublishOut(BaseModel):
    proxyId: str
    retired: bool
    alreadyRetired: bool
