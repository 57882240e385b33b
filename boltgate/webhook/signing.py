"""Webhook secrets and the three signature headers every delivery carries.

- ``X-LightningEnable-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`` — one
  ``v1=`` per active secret (during a rotation's overlap, the new one first);
- ``X-Gateway-Signature: <hex HMAC-SHA256(secret, body)>`` — a single signature (its receivers
  compare the whole header): the *previous* secret's while a rotation overlaps, else the current;
- Standard Webhooks: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature: v1,<base64
  HMAC-SHA256(base64-decoded secret, "<id>.<t>.<body>")>`` space-separated per active secret.

For the first two the key is the UTF-8 bytes of the whole ``whsec_…`` string, as the spec says.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(os.urandom(32)).decode("ascii")


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def standard_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature_headers(event_id: str, body: bytes, timestamp: int, secrets: list[str]) -> dict[str, str]:
    """Headers for one delivery; ``secrets`` newest first (two while a rotation overlaps)."""
    t = str(timestamp)
    le = ",".join([f"t={t}"] + [f"v1={_hmac(s.encode(), t.encode() + b'.' + body).hex()}" for s in secrets])
    standard = " ".join(
        "v1," + base64.b64encode(_hmac(standard_key(s), f"{event_id}.{t}.".encode() + body)).decode()
        for s in secrets
    )
    return {
        "X-LightningEnable-Signature": le,
        "X-Gateway-Signature": _hmac(secrets[-1].encode(), body).hex(),
        "webhook-id": event_id,
        "webhook-timestamp": t,
        "webhook-signature": standard,
    }
