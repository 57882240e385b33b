"""The security headers of the public pages: a strict Content-Security-Policy with a per-response
nonce, and who may frame the page.

The pages load one script and one stylesheet from this server; the script tag carries the nonce,
so no inline script runs without it. Images may come from ``https:`` (a merchant's logo, a
product picture) and ``data:``. Framing is refused unless the merchant (or the operator, for
every merchant) names the shop origins that embed the checkout: then ``frame-ancestors`` lists
them and ``X-Frame-Options`` (which cannot name several origins) is left out.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from urllib.parse import urlsplit

# scheme://host[:port], the host possibly starting with "*." (CSP host-source wildcards)
_ORIGIN = re.compile(
    r"^https?://(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:\d{1,5})?$"
)


def check_origin(value: str) -> str:
    """An origin a shop embeds the checkout from, normalised (lower case, no trailing slash)."""
    origin = value.strip().rstrip("/").lower()
    parts = urlsplit(origin)
    if not _ORIGIN.match(origin) or parts.path or parts.query or parts.fragment:
        raise ValueError(f"{value!r} is not an origin like https://shop.example or https://*.shop.example")
    return origin


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


def page_headers(nonce: str, frame_ancestors: Sequence[str]) -> dict[str, str]:
    ancestors = " ".join(frame_ancestors) if frame_ancestors else "'none'"
    policy = "; ".join(
        (
            "default-src 'none'",
            f"script-src 'self' 'nonce-{nonce}'",
            "style-src 'self'",
            "img-src 'self' data: https:",
            "connect-src 'self'",
            "form-action 'self'",
            "base-uri 'none'",
            f"frame-ancestors {ancestors}",
        )
    )
    headers = {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",  # the page's URL is the payment's capability
        "Cache-Control": "no-store",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    }
    if not frame_ancestors:
        headers["X-Frame-Options"] = "DENY"
    return headers
