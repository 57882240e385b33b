"""Sealing small secrets at rest (webhook signing secrets) with the server key.

AES-256-GCM (``cryptography``) under a key derived from ``BOLTGATE_SECRET_KEY`` with HKDF-SHA256
and a per-purpose label, so a database dump alone does not reveal the secrets. Sealed values look
like ``v1.<base64url(nonce || ciphertext)>``; changing the server key makes them unreadable, which
:meth:`SecretBox.open` reports as :class:`SealError`.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def derive_key(server_secret: str, purpose: str) -> bytes:
    """A 32-byte key for one purpose (HMACs, sealing), derived from the server key with HKDF-SHA256."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(
        server_secret.encode("utf-8")
    )


class SealError(ValueError):
    """A sealed value that this server key cannot open."""


class SecretBox:
    def __init__(self, server_secret: str, purpose: str) -> None:
        self._aead = AESGCM(derive_key(server_secret, purpose))
        self._aad = purpose.encode()

    def seal(self, plaintext: str) -> str:
        nonce = os.urandom(12)
        sealed = nonce + self._aead.encrypt(nonce, plaintext.encode("utf-8"), self._aad)
        return "v1." + base64.urlsafe_b64encode(sealed).decode("ascii")

    def open(self, sealed: str) -> str:
        if not sealed.startswith("v1."):
            raise SealError("unknown sealed format")
        try:
            raw = base64.urlsafe_b64decode(sealed[3:])
            return self._aead.decrypt(raw[:12], raw[12:], self._aad).decode("utf-8")
        except (InvalidTag, ValueError) as exc:
            raise SealError("cannot open: sealed with another server key") from exc
