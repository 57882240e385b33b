"""The error tree and its one renderer: RFC 9457 problem details.

Every error a client can see is a :class:`BoltgateError` with an HTTP status and a stable
snake_case ``error`` code. The body puts ``error`` first (some clients read only the first 200
characters) and repeats ``detail`` as ``message`` (clients of the Lightning Enable API read that).
"""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_BASE = "https://boltgate.dev/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"


class BoltgateError(Exception):
    """A documented, client-visible failure."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        self.detail = detail or self.title
        self.errors = errors
        self.headers = headers or {}
        if code is not None:
            self.code = code  # type: ignore[misc]
        super().__init__(self.detail)

    def body(self) -> dict[str, Any]:
        return problem_body(self.status, self.code, self.title, self.detail, self.errors)


def problem_body(
    status: int, code: str, title: str, detail: str, errors: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "error": code,
        "type": PROBLEM_BASE + code.replace("_", "-"),
        "title": title,
        "status": status,
        "detail": detail,
        "message": detail,
    }
    if errors:
        body["errors"] = errors
    return body


class ValidationFailed(BoltgateError):
    status = 400
    code = "validation_error"
    title = "Invalid request"


class MalformedRequest(BoltgateError):
    status = 400
    code = "malformed_request"
    title = "Malformed request"


class UnsupportedMediaType(BoltgateError):
    status = 400
    code = "unsupported_media_type"
    title = "Unsupported media type"


class PayloadTooLarge(BoltgateError):
    status = 400
    code = "payload_too_large"
    title = "Request body too large"


class Unauthorized(BoltgateError):
    status = 401
    code = "unauthorized"
    title = "Missing or invalid API key"


class Forbidden(BoltgateError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(BoltgateError):
    status = 404
    code = "not_found"
    title = "Not found"


class MethodNotAllowed(BoltgateError):
    status = 405
    code = "method_not_allowed"
    title = "Method not allowed"


class Conflict(BoltgateError):
    status = 409
    code = "conflict"
    title = "Conflict"


class Gone(BoltgateError):
    status = 410
    code = "gone"
    title = "Gone"


class HeadersTooLarge(BoltgateError):
    status = 431
    code = "headers_too_large"
    title = "Request headers too large"


class RateLimited(BoltgateError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"


class ServiceUnavailable(BoltgateError):
    status = 503
    code = "service_unavailable"
    title = "Service unavailable"


class RateUnavailable(ServiceUnavailable):
    code = "rate_unavailable"
    title = "Exchange rate unavailable"


class BackendUnavailable(ServiceUnavailable):
    code = "lightning_backend_unavailable"
    title = "Lightning backend unavailable"


class SecretKeyMismatch(ServiceUnavailable):
    """A stored secret was sealed with a server key this gateway does not have (the key was
    changed without ``BOLTGATE_SECRET_KEY_PREVIOUS``). 503, not 500: nothing is broken in the
    request or the code, the service cannot be given until the operator sets the key it was sealed
    with, and a client may retry later. The detail names the setting, never a value or a key."""

    code = "secret_key_mismatch"
    title = "Server key mismatch"


class BadGateway(BoltgateError):
    status = 502
    code = "upstream_unavailable"
    title = "Upstream unavailable"


class GatewayTimeout(BoltgateError):
    status = 504
    code = "upstream_timeout"
    title = "Upstream timeout"
