"""The server key ring: sealing small secrets at rest, and the per-purpose HMAC keys.

Every key is derived from a server key with HKDF-SHA256 and a per-purpose label, so a database
dump alone does not reveal the sealed secrets. Sealing is AES-256-GCM (``cryptography``); sealed
values look like ``v1.<base64url(nonce || ciphertext)>``.

The ring is ``BOLTGATE_SECRET_KEY`` followed by the keys of ``BOLTGATE_SECRET_KEY_PREVIOUS``
(newest first). The first key seals and signs everything new; every key opens and verifies, the
current first. That is how an operator rotates the key: new key plus the old one as previous,
restart, ``boltgate secret-key reseal`` (:mod:`boltgate.ops.rekey`), then drop the previous key.
A value no key of the ring opens raises :class:`SealError`, which the gateway answers as
``503 secret_key_mismatch`` (:class:`boltgate.errors.SecretKeyMismatch`).

Build boxes and HMAC keys through :func:`key_ring` (``key_ring(settings).box(purpose)``), so no
call site forgets the previous keys.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

if TYPE_CHECKING:
    from boltgate.config import Settings

# The purposes that seal values at rest; boltgate/ops/rekey.py names the columns of each.
WEBHOOK_SECRETS = "webhook-secrets"
MERCHANT_BACKENDS = "merchant-backends"
L402_ROOT_KEYS = "l402-root-keys"
SHOPIFY_SECRETS = "shopify-secrets"


def derive_key(server_secret: str, purpose: str) -> bytes:
    """A 32-byte key for one purpose (HMACs, sealing), derived from the server key with HKDF-SHA256."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(
        server_secret.encode("utf-8")
    )


@lru_cache(maxsize=64)
def _derived(secrets: tuple[str, ...], purpose: str) -> tuple[bytes, ...]:
    return tuple(derive_key(secret, purpose) for secret in secrets)


def split_keys(text: str | None) -> tuple[str, ...]:
    """The keys of ``BOLTGATE_SECRET_KEY_PREVIOUS``: comma-separated, blanks around them ignored."""
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The current server key first, then the previous ones (newest first)."""

    secrets: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.secrets:
            raise ValueError("a key ring needs at least the current key")

    @property
    def current(self) -> str:
        return self.secrets[0]

    @property
    def previous(self) -> tuple[str, ...]:
        return self.secrets[1:]

    def keys(self, purpose: str) -> tuple[bytes, ...]:
        """The HMAC keys of ``purpose``: sign with the first, accept any (cached per process)."""
        return _derived(self.secrets, purpose)

    def key(self, purpose: str) -> bytes:
        """The HMAC key new values of ``purpose`` are signed with (the current key's)."""
        return self.keys(purpose)[0]

    def box(self, purpose: str) -> SecretBox:
        return SecretBox(self.current, purpose, previous=self.previous)


def key_ring(settings: Settings) -> KeyRing:
    """The ring of the settings: ``BOLTGATE_SECRET_KEY``, then ``BOLTGATE_SECRET_KEY_PREVIOUS``."""
    previous = settings.secret_key_previous
    current = settings.secret_key.get_secret_value()
    older = split_keys(previous.get_secret_value() if previous is not None else None)
    return KeyRing((current, *(key for key in older if key != current)))


class SealError(ValueError):
    """A sealed value that no key of the ring can open. Carries the purpose, never the value."""

    def __init__(self, message: str, purpose: str = "") -> None:
        super().__init__(message)
        self.purpose = purpose


class SecretBox:
    """Seals with the current server key, opens with it or any previous one (current first)."""

    def __init__(self, server_secret: str, purpose: str, previous: Sequence[str] = ()) -> None:
        self.purpose = purpose
        self._aeads = [AESGCM(key) for key in _derived((server_secret, *previous), purpose)]
        self._aad = purpose.encode()

    def seal(self, plaintext: str) -> str:
        nonce = os.urandom(12)
        sealed = nonce + self._aeads[0].encrypt(nonce, plaintext.encode("utf-8"), self._aad)
        return "v1." + base64.urlsafe_b64encode(sealed).decode("ascii")

    def open(self, sealed: str) -> str:
        return self._open(sealed)[0]

    def reseal(self, sealed: str) -> str | None:
        """The value sealed again with the current key when only a previous key opens it; None
        when the current key already does (so sealing again twice changes nothing)."""
        plaintext, index = self._open(sealed)
        return None if index == 0 else self.seal(plaintext)

    def _open(self, sealed: str) -> tuple[str, int]:
        """The plaintext and the index of the ring key that opened it."""
        if not sealed.startswith("v1."):
            raise SealError("unknown sealed format", self.purpose)
        try:
            raw = base64.urlsafe_b64decode(sealed[3:])
        except ValueError:
            raise SealError("unknown sealed format", self.purpose) from None
        for index, aead in enumerate(self._aeads):
            try:
                return aead.decrypt(raw[:12], raw[12:], self._aad).decode("utf-8"), index
            except (InvalidTag, ValueError):
                continue
        raise SealError("cannot open: sealed with a server key this gateway does not have", self.purpose)
