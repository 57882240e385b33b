"""Request and response shapes of the webhooks API."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from boltgate.kit.clock import rfc3339
from boltgate.payment.schemas import printable
from boltgate.webhook import events
from boltgate.webhook.models import Delivery, DeliveryAttempt, WebhookEndpoint


def check_url(value: str) -> str:
    """An absolute http(s) URL without credentials; the address itself is checked when connecting."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http(s) URL")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        raise ValueError("must not contain spaces or control characters")
    if parts.username or parts.password:
        raise ValueError("must not contain credentials")
    try:
        _ = parts.port
    except ValueError as exc:
        raise ValueError("has an invalid port") from exc
    return value


def literal_address(url: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    host = urlsplit(url).hostname or ""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _check_events(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    unknown = sorted(set(value) - events.EVENT_TYPES)
    if unknown:
        raise ValueError(
            f"unknown event types: {', '.join(unknown)}; known: {', '.join(sorted(events.EVENT_TYPES))}"
        )
    return sorted(set(value))


def _check_description(value: str | None) -> str | None:
    return printable(value, 500)


class EndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    url: str = Field(max_length=2048, description="https URL (http allowed in dev mode)")
    description: str | None = Field(None, max_length=500)
    events: list[str] | None = Field(
        None, max_length=32, description="event types to receive; empty or absent: every event"
    )
    enabled: bool = True

    _url = field_validator("url")(check_url)
    _events = field_validator("events")(_check_events)
    _description = field_validator("description")(_check_description)


class EndpointUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    url: str | None = Field(None, max_length=2048)
    description: str | None = Field(None, max_length=500)
    events: list[str] | None = Field(None, max_length=32)
    enabled: bool | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_url(value)

    _events = field_validator("events")(_check_events)
    _description = field_validator("description")(_check_description)


class RotateSecret(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlapSeconds: int = Field(
        86400, ge=0, le=7 * 86400, description="how long the previous secret keeps signing too"
    )


class EndpointOut(BaseModel):
    id: str
    url: str
    description: str | None
    events: list[str]
    enabled: bool
    disabledReason: str | None
    disabledAt: str | None
    consecutiveFailures: int
    secretRotatedUntil: str | None = Field(description="while set, the previous secret also signs")
    createdAt: str
    updatedAt: str
    secret: str | None = Field(None, description="only in the answer that creates or rotates it")


class EndpointList(BaseModel):
    items: list[EndpointOut]
    total: int


class AttemptOut(BaseModel):
    attemptedAt: str
    statusCode: int | None
    latencyMs: int
    error: str | None
    responseBody: str | None


class DeliveryOut(BaseModel):
    id: str
    endpointId: str
    eventId: str
    event: str
    status: str
    attempts: int
    nextAttemptAt: str | None
    lastStatusCode: int | None
    lastError: str | None
    createdAt: str
    completedAt: str | None
    attemptLog: list[AttemptOut]


class DeliveryList(BaseModel):
    items: list[DeliveryOut]
    total: int
    limit: int
    offset: int


class PingOut(BaseModel):
    success: bool
    statusCode: int | None
    latencyMs: int
    error: str | None
    responseBody: str | None


def endpoint_out(endpoint: WebhookEndpoint, secret: str | None = None) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "events": list(endpoint.event_types or []),
        "enabled": endpoint.enabled,
        "disabledReason": endpoint.disabled_reason,
        "disabledAt": rfc3339(endpoint.disabled_at),
        "consecutiveFailures": endpoint.consecutive_failures,
        "secretRotatedUntil": rfc3339(endpoint.previous_secret_expires_at)
        if endpoint.previous_secret
        else None,
        "createdAt": rfc3339(endpoint.created_at),
        "updatedAt": rfc3339(endpoint.updated_at),
        **({"secret": secret} if secret is not None else {}),
    }


def attempt_out(attempt: DeliveryAttempt) -> dict[str, Any]:
    return {
        "attemptedAt": rfc3339(attempt.attempted_at),
        "statusCode": attempt.status_code,
        "latencyMs": attempt.latency_ms,
        "error": attempt.error,
        "responseBody": attempt.response_body,
    }


def delivery_out(delivery: Delivery, event_type: str, attempts: list[DeliveryAttempt]) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "endpointId": delivery.endpoint_id,
        "eventId": delivery.event_id,
        "event": event_type,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "nextAttemptAt": rfc3339(delivery.next_attempt_at) if delivery.status == "pending" else None,
        "lastStatusCode": delivery.last_status_code,
        "lastError": delivery.last_error,
        "createdAt": rfc3339(delivery.created_at),
        "completedAt": rfc3339(delivery.completed_at),
        "attemptLog": [attempt_out(a) for a in attempts],
    }
