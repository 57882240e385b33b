"""L402 macaroons: the V2 binary format, the HMAC signature chain and the L402 identifier.

Why hand-written rather than built on a macaroon library: every paid request carries a macaroon
that boltgate must decode, parse and verify before it does anything else, so this is on the hot
path. ``bench/l402.py`` times a whole credential check (base64, parse, identifier, HMAC chain,
three caveats) beside ``pymacaroons`` deserializing and verifying the same macaroon; the target
is at most 25 µs. On the development machine this module takes about 17 µs (the five HMACs are
about half of it) and ``pymacaroons`` about 56 µs. The speed comes from reading the binary format
with plain integer indexing and byte slices (no packet objects, no hex round trips) and from the
one-shot ``hmac.digest``, which runs HMAC-SHA256 entirely in OpenSSL. ``pymacaroons`` is used by
the tests as an independent oracle: it must accept what we write and we must accept what it
writes, byte for byte.

Format (libmacaroons V2, as ``gopkg.in/macaroon.v2`` writes it)::

    0x02                                  version
    [0x01 varint(len) location]           optional; written unless the location is empty
    0x02 varint(len) identifier
    0x00                                  end of header
    (0x02 varint(len) caveat-id 0x00)*    first-party caveats
    0x00                                  end of caveats
    0x06 0x20 signature[32]               nothing may follow

Packets are ``varint(tag) varint(length) data`` (unsigned LEB128 varints); tags: end of section
0, location 1, identifier 2, verification id 4, signature 6. Parsing is strict: fields in
ascending tag order, minimal varints, no trailing bytes, a 32-byte signature, at most 8 KiB.
Third-party caveats (a verification id or a caveat location) are refused: boltgate only issues
and accepts first-party caveats.

Signature chain::

    k     = HMAC-SHA256(key=b"macaroons-key-generator", msg=root_key)
    sig_0 = HMAC-SHA256(k, identifier)
    sig_i = HMAC-SHA256(sig_{i-1}, caveat_i)

The L402 identifier is ``version:u16 big-endian = 0 | payment_hash[32] | token_id[32]`` and the
root key is filed under ``sha256(identifier)`` (:func:`root_key_id`). In HTTP headers a macaroon
travels as standard base64 with padding (:func:`encode`); :func:`decode` also takes the url-safe
alphabet and missing padding.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "IDENTIFIER_SIZE",
    "MAX_BINARY_SIZE",
    "MAX_TEXT_SIZE",
    "Identifier",
    "Macaroon",
    "MacaroonError",
    "attenuate",
    "decode",
    "decode_identifier",
    "deserialize",
    "encode",
    "encode_identifier",
    "mint",
    "root_key_id",
    "serialize",
    "signature_valid",
]

IDENTIFIER_SIZE = 66
MAX_BINARY_SIZE = 8 * 1024
MAX_TEXT_SIZE = 12 * 1024

_VERSION_V2 = 2
_EOS = 0
_LOCATION = 1
_IDENTIFIER = 2
_VID = 4
_SIGNATURE = 6
_KNOWN_TAGS = frozenset({_EOS, _LOCATION, _IDENTIFIER, _VID, _SIGNATURE})
_SIG_SIZE = 32
_KEY_GENERATOR = b"macaroons-key-generator"
_THIRD_PARTY = "third-party caveats are not supported"
_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")


class MacaroonError(ValueError):
    """A macaroon, identifier or base64 text that is malformed; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class Identifier:
    """The fields of an L402 macaroon identifier (version 0)."""

    version: int
    payment_hash: bytes
    token_id: bytes


@dataclass(frozen=True, slots=True)
class Macaroon:
    """A macaroon with first-party caveats only. ``caveats`` are the caveat ids, in chain order."""

    location: str
    identifier: bytes
    caveats: tuple[bytes, ...]
    signature: bytes


# ------------------------------------------------------------------------------------ identifier


def encode_identifier(payment_hash: bytes, token_id: bytes) -> bytes:
    """The 66-byte version-0 L402 identifier for a payment hash and a token id (32 bytes each)."""
    if len(payment_hash) != 32:
        raise MacaroonError(f"payment hash must be 32 bytes, got {len(payment_hash)}")
    if len(token_id) != 32:
        raise MacaroonError(f"token id must be 32 bytes, got {len(token_id)}")
    return b"\x00\x00" + bytes(payment_hash) + bytes(token_id)


def decode_identifier(data: bytes) -> Identifier:
    """Split an L402 identifier; it must be exactly 66 bytes and version 0."""
    if len(data) != IDENTIFIER_SIZE:
        raise MacaroonError(f"identifier must be {IDENTIFIER_SIZE} bytes, got {len(data)}")
    version = (data[0] << 8) | data[1]
    if version != 0:
        raise MacaroonError(f"unsupported identifier version {version}")
    return Identifier(0, bytes(data[2:34]), bytes(data[34:66]))


def root_key_id(identifier: bytes) -> bytes:
    """SHA-256 of the identifier: the id under which the secret store keeps the root key."""
    return hashlib.sha256(identifier).digest()


# -------------------------------------------------------------------------------- signature chain


def _as_bytes(caveat: str | bytes) -> bytes:
    return caveat.encode() if isinstance(caveat, str) else bytes(caveat)


def mint(root_key: bytes, identifier: bytes, location: str, caveats: Sequence[str | bytes] = ()) -> Macaroon:
    """A new macaroon signed with ``root_key``, carrying ``caveats`` (str is UTF-8 encoded) in order."""
    ids = tuple(_as_bytes(c) for c in caveats)
    sig = hmac.digest(hmac.digest(_KEY_GENERATOR, root_key, "sha256"), identifier, "sha256")
    for caveat in ids:
        sig = hmac.digest(sig, caveat, "sha256")
    return Macaroon(location, bytes(identifier), ids, sig)


def attenuate(macaroon: Macaroon, caveat: str | bytes) -> Macaroon:
    """The macaroon with one more first-party caveat; needs no key, only the current signature."""
    cid = _as_bytes(caveat)
    sig = hmac.digest(macaroon.signature, cid, "sha256")
    return Macaroon(macaroon.location, macaroon.identifier, (*macaroon.caveats, cid), sig)


def signature_valid(macaroon: Macaroon, root_key: bytes) -> bool:
    """Whether the signature is the chain of HMACs from ``root_key`` (compared in constant time)."""
    digest = hmac.digest
    sig = digest(digest(_KEY_GENERATOR, root_key, "sha256"), macaroon.identifier, "sha256")
    for caveat in macaroon.caveats:
        sig = digest(sig, caveat, "sha256")
    return hmac.compare_digest(sig, macaroon.signature)


# ---------------------------------------------------------------------------------------- binary


def _put_varint(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _put_packet(out: bytearray, tag: int, data: bytes) -> None:
    out.append(tag)
    _put_varint(out, len(data))
    out += data


def serialize(macaroon: Macaroon) -> bytes:
    """The V2 binary form (an empty location is left out, as go-macaroon does)."""
    if len(macaroon.signature) != _SIG_SIZE:
        raise MacaroonError(f"signature must be {_SIG_SIZE} bytes, got {len(macaroon.signature)}")
    out = bytearray(b"\x02")
    if macaroon.location:
        _put_packet(out, _LOCATION, macaroon.location.encode())
    _put_packet(out, _IDENTIFIER, macaroon.identifier)
    out.append(_EOS)
    for caveat in macaroon.caveats:
        _put_packet(out, _IDENTIFIER, caveat)
        out.append(_EOS)
    out.append(_EOS)
    _put_packet(out, _SIGNATURE, macaroon.signature)
    if len(out) > MAX_BINARY_SIZE:
        raise MacaroonError(f"macaroon would be {len(out)} bytes, more than {MAX_BINARY_SIZE}")
    return bytes(out)


def _varint_tail(data: bytes, pos: int, first: int) -> tuple[int, int]:
    """Finish a varint whose first byte (>= 0x80) was at ``pos - 1``; returns (value, next pos)."""
    value = first & 0x7F
    shift = 7
    end = len(data)
    while True:
        if pos >= end:
            raise MacaroonError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if byte == 0:
                raise MacaroonError("non-minimal varint")
            if value >= 1 << 64:
                raise MacaroonError("varint overflows 64 bits")
            return value, pos
        shift += 7
        if shift > 63:
            raise MacaroonError("varint overflows 64 bits")


def _packet(data: bytes, pos: int) -> tuple[int, int, int]:
    """Read the packet at ``pos``: (tag, data start, data end = next pos). EOS has no data."""
    if pos >= len(data):
        raise MacaroonError("truncated macaroon")
    tag = data[pos]
    pos += 1
    if tag >= 0x80:
        tag, pos = _varint_tail(data, pos, tag)
    if tag == _EOS:
        return _EOS, pos, pos
    if pos >= len(data):
        raise MacaroonError("truncated macaroon")
    length = data[pos]
    pos += 1
    if length >= 0x80:
        length, pos = _varint_tail(data, pos, length)
    end = pos + length
    if end > len(data):
        raise MacaroonError("field data extends past the end of the macaroon")
    return tag, pos, end


def _unexpected(tag: int, previous: int, where: str) -> MacaroonError:
    if tag not in _KNOWN_TAGS:
        return MacaroonError(f"unknown field type {tag} in {where}")
    if tag <= previous:
        return MacaroonError(f"fields out of order in {where}")
    return MacaroonError(f"unexpected field type {tag} in {where}")


def deserialize(data: bytes) -> Macaroon:
    """Parse a V2 binary macaroon strictly; :class:`MacaroonError` on anything malformed."""
    if type(data) is not bytes:
        data = bytes(data)
    size = len(data)
    if size == 0:
        raise MacaroonError("empty macaroon")
    if size > MAX_BINARY_SIZE:
        raise MacaroonError(f"macaroon is {size} bytes, more than {MAX_BINARY_SIZE}")
    if data[0] != _VERSION_V2:
        raise MacaroonError(f"not a V2 macaroon (version byte 0x{data[0]:02x})")

    # Header: [location] identifier EOS
    tag, start, end = _packet(data, 1)
    location = ""
    previous = -1
    if tag == _LOCATION:
        try:
            location = data[start:end].decode()
        except UnicodeDecodeError:
            raise MacaroonError("location is not UTF-8") from None
        previous = _LOCATION
        tag, start, end = _packet(data, end)
    if tag != _IDENTIFIER:
        if tag == _EOS:
            raise MacaroonError("macaroon has no identifier")
        raise _unexpected(tag, previous, "header")
    identifier = data[start:end]
    tag, start, pos = _packet(data, end)
    if tag != _EOS:
        raise _unexpected(tag, _IDENTIFIER, "header")

    # Caveats: (identifier EOS)* EOS
    caveats: list[bytes] = []
    while True:
        tag, start, end = _packet(data, pos)
        if tag == _EOS:
            pos = end
            break
        if tag != _IDENTIFIER:
            if tag in (_LOCATION, _VID):
                raise MacaroonError(_THIRD_PARTY)
            raise _unexpected(tag, -1, "caveat")
        caveats.append(data[start:end])
        tag, _, pos = _packet(data, end)
        if tag != _EOS:
            if tag == _VID:
                raise MacaroonError(_THIRD_PARTY)
            raise _unexpected(tag, _IDENTIFIER, "caveat")

    # Signature, and nothing after it.
    tag, start, end = _packet(data, pos)
    if tag != _SIGNATURE:
        raise MacaroonError(f"expected the signature, found field type {tag}")
    if end - start != _SIG_SIZE:
        raise MacaroonError(f"signature must be {_SIG_SIZE} bytes, got {end - start}")
    if end != size:
        raise MacaroonError(f"{size - end} trailing bytes after the signature")
    return Macaroon(location, identifier, tuple(caveats), data[start:end])


# ---------------------------------------------------------------------------------------- base64


def encode(macaroon: Macaroon) -> str:
    """Standard base64 with padding of the V2 binary form: what HTTP headers carry."""
    return binascii.b2a_base64(serialize(macaroon), newline=False).decode("ascii")


def decode(text: str) -> Macaroon:
    """Parse base64 text: standard or url-safe alphabet, padded or not, surrounding whitespace allowed."""
    if len(text) > MAX_TEXT_SIZE:
        raise MacaroonError(f"macaroon text is {len(text)} characters, more than {MAX_TEXT_SIZE}")
    if not text.isascii():
        raise MacaroonError("macaroon text is not ASCII")
    text = text.strip()
    if not text:
        raise MacaroonError("empty macaroon")
    if "-" in text or "_" in text:
        if "+" in text or "/" in text:
            raise MacaroonError("macaroon text mixes the standard and url-safe base64 alphabets")
        text = text.translate(_URLSAFE_TO_STANDARD)
    missing = -len(text) % 4
    if missing:
        if missing == 3 or text[-1] == "=":
            raise MacaroonError("macaroon text is not valid base64 (bad length or padding)")
        text += "=" * missing
    try:
        raw = binascii.a2b_base64(text, strict_mode=True)
    except binascii.Error as exc:
        raise MacaroonError(f"macaroon text is not valid base64 ({exc})") from None
    return deserialize(raw)
