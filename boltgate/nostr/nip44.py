"""NIP-44 version 2 encrypted payloads (nostr-protocol/nips ``44.md``).

Two keys agree on a *conversation key*; each message gets its own keys from a random nonce:

1. ``shared_x`` = the 32-byte x coordinate of ``secret_a · pubkey_B`` (unhashed: libsecp256k1's
   ``ecdh`` hashes the point, so :func:`conversation_key` multiplies through ``tweak_mul``);
   ``conversation_key = HKDF-extract(SHA-256, IKM=shared_x, salt="nip44-v2")``.
2. ``HKDF-expand(conversation_key, info=nonce, L=76)`` → ChaCha20 key (32), ChaCha20 nonce (12),
   HMAC key (32).
3. The plaintext (UTF-8, at least 1 byte) is padded: a big-endian length prefix, the bytes, zeros
   up to :func:`calc_padded_len`. The prefix is a ``u16`` below 65536 bytes and ``00 00`` + ``u32``
   from 65536 bytes on (the extension of nips PR #1907/#2270; shorter messages are unchanged).
4. ChaCha20 (RFC 8439, counter 0), then ``HMAC-SHA256(hmac_key, nonce || ciphertext)``.
5. Payload: ``base64(0x02 || nonce || ciphertext || mac)``. A payload starting with ``#`` is a
   future, non-base64 version.

Decryption checks the MAC (in constant time) before it decrypts, then the padding exactly: a
length prefix that does not fit the padded size is refused, as is an extended prefix for a
length a ``u16`` can hold. Every failure is :class:`Nip44Error`. Checked against the official
vectors file (``tests/nostr/nip44.vectors.json``, sha256 ``269ed0f6…5040``).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os

from coincurve import PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

VERSION = 2
SALT = b"nip44-v2"
MIN_PLAINTEXT = 1
MAX_PLAINTEXT = 0xFFFFFFFF
EXTENDED_PREFIX_THRESHOLD = 65536
MIN_PAYLOAD_CHARS = 132  # base64 of 1 + 32 + (2 + 32) + 32 bytes
MIN_PAYLOAD_BYTES = 99
#: The largest payload :func:`decrypt` reads unless told otherwise (the protocol has no limit
#: since the extended prefix; a relay frame is far smaller anyway).
DEFAULT_MAX_PAYLOAD_CHARS = 2 * 1024 * 1024
_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class Nip44Error(ValueError):
    """A key, plaintext or payload that NIP-44 v2 refuses; the message says which."""


def _secret_bytes(secret: bytes | str) -> bytes:
    raw = bytes.fromhex(secret) if isinstance(secret, str) else secret
    if len(raw) != 32 or not 0 < int.from_bytes(raw, "big") < _ORDER:
        raise Nip44Error("a secret key is 32 bytes encoding 1..n-1")
    return raw


def conversation_key(secret: bytes | str, pubkey: bytes | str) -> bytes:
    """The key ``secret`` (32 bytes or hex) shares with the x-only ``pubkey`` (32 bytes or hex)."""
    try:
        x_only = bytes.fromhex(pubkey) if isinstance(pubkey, str) else pubkey
        scalar = _secret_bytes(secret)
    except ValueError as exc:
        raise Nip44Error(str(exc) if isinstance(exc, Nip44Error) else "keys are hex") from None
    if len(x_only) != 32:
        raise Nip44Error("a public key is 32 bytes (x-only)")
    try:
        point = PublicKey(b"\x02" + x_only)
    except ValueError:
        raise Nip44Error("the public key is not a point on secp256k1") from None
    shared_x = point.multiply(scalar).format(compressed=True)[1:]
    return hmac.digest(SALT, shared_x, "sha256")


def message_keys(conversation: bytes, nonce: bytes) -> tuple[bytes, bytes, bytes]:
    """(ChaCha20 key, ChaCha20 nonce, HMAC key) of one message."""
    if len(conversation) != 32:
        raise Nip44Error("a conversation key is 32 bytes")
    if len(nonce) != 32:
        raise Nip44Error("a nonce is 32 bytes")
    keys = HKDFExpand(algorithm=SHA256(), length=76, info=nonce).derive(conversation)
    return keys[:32], keys[32:44], keys[44:]


def calc_padded_len(unpadded_len: int) -> int:
    """The padded size of a plaintext of ``unpadded_len`` bytes (without the length prefix)."""
    if unpadded_len < 1:
        raise Nip44Error("a plaintext has at least 1 byte")
    if unpadded_len <= 32:
        return 32
    next_power = 1 << (unpadded_len - 1).bit_length()
    chunk = 32 if next_power <= 256 else next_power // 8
    return chunk * ((unpadded_len - 1) // chunk + 1)


def pad(plaintext: bytes) -> bytes:
    size = len(plaintext)
    if not MIN_PLAINTEXT <= size <= MAX_PLAINTEXT:
        raise Nip44Error(f"a plaintext has 1 to {MAX_PLAINTEXT} bytes")
    if size < EXTENDED_PREFIX_THRESHOLD:
        prefix = size.to_bytes(2, "big")
    else:
        prefix = b"\x00\x00" + size.to_bytes(4, "big")
    return prefix + plaintext + bytes(calc_padded_len(size) - size)


def unpad(padded: bytes) -> bytes:
    if len(padded) < 2:
        raise Nip44Error("invalid padding")
    size, start = int.from_bytes(padded[:2], "big"), 2
    if size == 0:
        if len(padded) < 6:
            raise Nip44Error("invalid padding")
        size, start = int.from_bytes(padded[2:6], "big"), 6
        if size < EXTENDED_PREFIX_THRESHOLD:
            raise Nip44Error("invalid padding (an extended prefix for a short plaintext)")
    if len(padded) != start + calc_padded_len(size):
        raise Nip44Error("invalid padding")
    return padded[start : start + size]


def _chacha20(key: bytes, nonce: bytes, data: bytes) -> bytes:
    # cryptography takes a 16-byte nonce: the 32-bit little-endian block counter (0), then RFC 8439's 12.
    return Cipher(algorithms.ChaCha20(key, b"\x00" * 4 + nonce), mode=None).encryptor().update(data)


def _mac(key: bytes, nonce: bytes, ciphertext: bytes) -> bytes:
    return hmac.digest(key, nonce + ciphertext, "sha256")


def encrypt(plaintext: str, conversation: bytes, nonce: bytes | None = None) -> str:
    """The payload of ``plaintext``; ``nonce`` is fresh randomness unless given (tests only)."""
    nonce = os.urandom(32) if nonce is None else nonce
    chacha_key, chacha_nonce, hmac_key = message_keys(conversation, nonce)
    try:
        data = plaintext.encode("utf-8")
    except UnicodeEncodeError:
        raise Nip44Error("the plaintext is not valid Unicode (a lone surrogate)") from None
    ciphertext = _chacha20(chacha_key, chacha_nonce, pad(data))
    raw = bytes([VERSION]) + nonce + ciphertext + _mac(hmac_key, nonce, ciphertext)
    return base64.b64encode(raw).decode("ascii")


def decrypt(payload: str, conversation: bytes, *, max_chars: int = DEFAULT_MAX_PAYLOAD_CHARS) -> str:
    """The plaintext of ``payload``, or :class:`Nip44Error` (unknown version, bad size, bad MAC…)."""
    if not payload or payload[0] == "#":
        raise Nip44Error("unknown encryption version")
    if not MIN_PAYLOAD_CHARS <= len(payload) <= max_chars:
        raise Nip44Error(f"invalid payload size ({len(payload)} characters)")
    try:
        raw = base64.b64decode(payload.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise Nip44Error("invalid base64") from None
    if len(raw) < MIN_PAYLOAD_BYTES:
        raise Nip44Error(f"invalid payload size ({len(raw)} bytes)")
    if raw[0] != VERSION:
        raise Nip44Error(f"unknown encryption version {raw[0]}")
    nonce, ciphertext, mac = raw[1:33], raw[33:-32], raw[-32:]
    chacha_key, chacha_nonce, hmac_key = message_keys(conversation, nonce)
    if not hmac.compare_digest(_mac(hmac_key, nonce, ciphertext), mac):
        raise Nip44Error("invalid MAC")
    try:
        return unpad(_chacha20(chacha_key, chacha_nonce, ciphertext)).decode("utf-8")
    except UnicodeDecodeError:
        raise Nip44Error("the plaintext is not UTF-8") from None
