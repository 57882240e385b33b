"""Request bodies of the agent marketplace (camelCase, as the Lightning Enable clients send them).

Unknown fields are ignored (clients of other versions send more); text is checked for control characters
here, so what reaches a signed event is what the client meant.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from boltgate.l402.schemas import MAX_PRICE_SATS
from boltgate.payment.schemas import multiline, printable

#: the proxy's description limit, and under the 4096 characters relays commonly accept (nostr-relay)
MAX_CONTENT_CHARS = 4000
_CATEGORY = re.compile(r"^[^\x00-\x1f\x7f,]{1,50}$")
_HASHTAG = re.compile(r"^[^\s\x00-\x1f\x7f,#]{1,50}$")


def _labels(values: list[str], pattern: re.Pattern[str], what: str, lower: bool) -> list[str]:
    """Trimmed, checked, deduplicated without regard to case (first spelling kept), order kept."""
    seen: dict[str, str] = {}
    for raw in values:
        value = raw.strip().removeprefix("#") if lower else raw.strip()
        if not pattern.match(value):
            raise ValueError(f"each {what} is 1 to 50 characters, without ',' or control characters")
        seen.setdefault(value.casefold(), value.lower() if lower else value)
    return list(seen.values())


class CapabilityCreate(BaseModel):
    """Body of ``POST /api/agents/capabilities``, as the MCP's ``publish_capability`` sends it."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    serviceId: str = Field(min_length=1, max_length=160, description="your name for the service")
    categories: list[str] = Field(min_length=1, max_length=20)
    content: str = Field(min_length=1, max_length=MAX_CONTENT_CHARS, description="what the service does")
    priceSats: StrictInt = Field(gt=0, le=MAX_PRICE_SATS, description="price per request")
    l402Endpoint: str | None = Field(None, max_length=2048, description="a paid API elsewhere (https)")
    targetUrl: str | None = Field(
        None,
        max_length=2048,
        description="an API to put behind a new paid proxy here (wins over l402Endpoint)",
    )
    hashtags: list[str] | None = Field(None, max_length=20)

    @field_validator("serviceId")
    @classmethod
    def _service_id(cls, value: str) -> str | None:
        return printable(value, 160)

    @field_validator("content")
    @classmethod
    def _content(cls, value: str) -> str | None:
        return multiline(value)

    @field_validator("categories")
    @classmethod
    def _categories(cls, value: list[str]) -> list[str]:
        return _labels(value, _CATEGORY, "category", lower=False)

    @field_validator("hashtags")
    @classmethod
    def _hashtags(cls, value: list[str] | None) -> list[str]:
        return _labels(value or [], _HASHTAG, "hashtag (no spaces)", lower=True)

    @field_validator("l402Endpoint", "targetUrl")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None


class RequestCreate(BaseModel):
    """Body of ``POST /api/agents/requests``, as the MCP's ``request_service`` sends it."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    capabilityEventId: str = Field(min_length=1, max_length=200)
    budgetSats: StrictInt = Field(gt=0, le=MAX_PRICE_SATS)
    parameters: str | None = Field(
        None, max_length=8000, description="JSON text (an object: one param tag per key)"
    )


class AgreementCreate(BaseModel):
    """Body of ``POST /api/agents/agreements``: the provider's answer to a request."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    requestEventId: str = Field(min_length=1, max_length=200)
    priceSats: StrictInt = Field(gt=0, le=MAX_PRICE_SATS)
    terms: str | None = Field(None, max_length=2000)
    expiresInSeconds: StrictInt | None = Field(None, ge=60, le=365 * 86400)

    @field_validator("terms")
    @classmethod
    def _terms(cls, value: str | None) -> str | None:
        return multiline(value) or None


class ReviewIn(BaseModel):
    """Body of ``POST /api/agents/attestations``: a kind-38403 event the reviewer signed."""

    model_config = ConfigDict(extra="ignore")
    event: dict[str, Any] | None = None
