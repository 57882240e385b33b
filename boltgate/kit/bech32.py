"""Bech32 (BIP-173) without the 90-character limit, tuned for BOLT 11.

BOLT 11 invoices are bech32 strings of several hundred characters, so the BIP-173 length limit
does not apply (the spec says so explicitly) and the usual reference implementation, which walks
the string one 5-bit word at a time in Python, is the slowest part of a naive invoice codec.

Here 5-bit data is carried as *strings of bech32 characters* rather than lists of ints, because
every conversion then has a C-speed path in the standard library:

* characters -> integer: translate to the base-32 digits ``0-9a-v`` and call ``int(s, 32)``;
* bytes -> characters: :func:`base64.b32encode` is exactly "8-bit to 5-bit, big-endian, pad the
  last group with zero bits", only with another alphabet, so one ``bytes.translate`` fixes it;
* the checksum loop consumes three words per step through a 32768-entry table derived from the
  BIP-173 generator, a third of the iterations of the textbook loop.

Only bech32 (constant 1) is implemented: BOLT 11 predates bech32m and keeps using bech32.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

__all__ = [
    "CHARSET",
    "Bech32Error",
    "bytes_to_chars",
    "chars_to_bytes",
    "chars_to_int",
    "chars_to_values",
    "convertbits",
    "create_checksum",
    "decode",
    "encode",
    "int_to_chars",
    "values_to_chars",
    "verify_checksum",
]

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
"""The 32 bech32 characters; the index of a character is its 5-bit value."""

_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_INVALID = 0xFF


class Bech32Error(ValueError):
    """A string that is not valid bech32, or data that cannot be converted losslessly."""


def _step(chk: int, value: int) -> int:
    """One step of the BIP-173 polymod: shift in one 5-bit ``value``."""
    top = chk >> 25
    chk = ((chk & 0x1FFFFFF) << 5) ^ value
    for i in range(5):
        if (top >> i) & 1:
            chk ^= _GENERATOR[i]
    return chk


def _build_table(words: int) -> list[int]:
    """Effect of the top ``5 * words`` bits of the state after shifting in ``words`` zero words.

    The polymod is linear over GF(2), so ``state' = ((state & low) << 5k) ^ words ^ T[state >> s]``
    where ``T`` only depends on the bits that are shifted out. Build it from single bits.
    """
    shift = 30 - 5 * words
    table = [0] * (1 << (5 * words))
    for bit in range(5 * words):
        chk = 1 << (shift + bit)
        for _ in range(words):
            chk = _step(chk, 0)
        table[1 << bit] = chk
    for index in range(1, len(table)):
        low = index & -index
        if index != low:
            table[index] = table[index ^ low] ^ table[low]
    return table


_TABLE1 = _build_table(1)
_TABLE3 = _build_table(3)

# str.translate tables: bech32 character (either case) -> base-32 digit / 5-bit value.
_DIGITS = "0123456789abcdefghijklmnopqrstuv"
_TO_DIGIT = {ord(c): _DIGITS[i] for i, c in enumerate(CHARSET)}
_FROM_DIGIT = {ord(d): CHARSET[i] for i, d in enumerate(_DIGITS)}
_VALUE_TABLE = bytearray([_INVALID] * 256)
for _i, _c in enumerate(CHARSET):
    _VALUE_TABLE[ord(_c)] = _i
    _VALUE_TABLE[ord(_c.upper())] = _i
_TO_VALUE = bytes(_VALUE_TABLE)
_FROM_VALUE = bytes(CHARSET.encode("ascii") + b"\x00" * 224)
# RFC 4648 base32 alphabet (A-Z, 2-7) -> bech32 alphabet, for bytes_to_chars.
_RFC4648 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_FROM_RFC4648 = bytes.maketrans(_RFC4648, CHARSET.encode("ascii"))


def _polymod(values: bytes, chk: int) -> int:
    """Run the checksum state ``chk`` over ``values`` (5-bit values, one per byte).

    Three values per iteration through ``_TABLE3``; ``zip`` over one iterator is the cheapest
    way CPython offers to walk a sequence in groups (measured against memoryview casts and big-
    integer slicing, both slower).
    """
    table1 = _TABLE1
    head = len(values) % 3
    for value in values[:head]:
        chk = table1[chk >> 25] ^ ((chk & 0x1FFFFFF) << 5) ^ value
    table3 = _TABLE3
    it = iter(values[head:])
    for v0, v1, v2 in zip(it, it, it):
        chk = table3[chk >> 15] ^ ((chk & 0x7FFF) << 15) ^ (v0 << 10 | v1 << 5 | v2)
    return chk


_HRP_HIGH = bytes(c >> 5 for c in range(256))
_HRP_LOW = bytes(c & 31 for c in range(256))


def _hrp_state(hrp: str) -> int:
    """Checksum state after the BIP-173 "expanded" human-readable part (high bits, 0, low bits)."""
    raw = hrp.encode("ascii")
    return _polymod(raw.translate(_HRP_HIGH) + b"\x00" + raw.translate(_HRP_LOW), 1)


def create_checksum(hrp: str, data: str) -> str:
    """The six checksum characters for lowercase ``hrp`` and ``data`` (bech32 characters)."""
    chk = _polymod(chars_to_values(data) + b"\x00" * 6, _hrp_state(hrp)) ^ 1
    return "".join(CHARSET[(chk >> (5 * (5 - i))) & 31] for i in range(6))


def verify_checksum(hrp: str, data: str) -> bool:
    """True when ``data`` (bech32 characters, checksum included) checks out under ``hrp``."""
    return _polymod(chars_to_values(data), _hrp_state(hrp)) == 1


def encode(hrp: str, data: str) -> str:
    """``hrp + "1" + data + checksum`` for lowercase ``hrp`` and ``data`` (bech32 characters)."""
    return f"{hrp}1{data}{create_checksum(hrp, data)}"


def decode(bech: str) -> tuple[str, str]:
    """Split and verify a bech32 string of any length.

    Returns the lowercase human-readable part and the lowercase data characters *without* the
    checksum. Rejects (BIP-173): mixed case, characters outside 33..126 in the hrp, a missing
    separator, an empty hrp, a data part shorter than the checksum, characters outside the
    bech32 alphabet, and a wrong checksum.
    """
    if not bech.isascii():
        raise Bech32Error("non-ASCII character")
    lower = bech.lower()
    if lower != bech and bech.upper() != bech:
        raise Bech32Error("mixed upper and lower case")
    sep = lower.rfind("1")
    if sep < 1:
        raise Bech32Error("no separator '1'" if sep < 0 else "empty human-readable part")
    hrp = lower[:sep]
    if any(not 33 <= ord(c) <= 126 for c in hrp):
        raise Bech32Error("invalid character in human-readable part")
    data = lower[sep + 1 :]
    if len(data) < 6:
        raise Bech32Error("data part shorter than the checksum")
    values = chars_to_values(data)
    if _polymod(values, _hrp_state(hrp)) != 1:
        raise Bech32Error("invalid checksum")
    return hrp, data[:-6]


def chars_to_values(chars: str) -> bytes:
    """Bech32 characters (either case) -> their 5-bit values, one per byte."""
    values = chars.encode("ascii", "replace").translate(_TO_VALUE)
    if _INVALID in values:
        bad = chars[values.index(_INVALID)]
        raise Bech32Error(f"invalid bech32 character {bad!r}")
    return values


def values_to_chars(values: Iterable[int]) -> str:
    """5-bit values -> bech32 characters."""
    raw = bytes(values)
    if raw and max(raw) > 31:
        raise Bech32Error("value does not fit in 5 bits")
    return raw.translate(_FROM_VALUE).decode("ascii")


def chars_to_int(chars: str) -> int:
    """Big-endian integer of lowercase bech32 characters (0 for the empty string)."""
    return int(chars.translate(_TO_DIGIT), 32) if chars else 0


def int_to_chars(value: int, length: int | None = None) -> str:
    """Big-endian bech32 characters of ``value``: ``length`` of them, or as few as possible.

    The minimal form of 0 is one character, never the empty string.
    """
    if value < 0:
        raise Bech32Error("negative value")
    if length is None:
        length = max(1, -(-value.bit_length() // 5))
    elif value >> (5 * length):
        raise Bech32Error(f"{value} does not fit in {length} characters")
    out = bytearray(length)
    for index in range(length - 1, -1, -1):
        out[index] = _FROM_VALUE[value & 31]
        value >>= 5
    return out.decode("ascii")


def bytes_to_chars(data: bytes) -> str:
    """8-bit bytes -> bech32 characters, zero-padding the last 5-bit group (BOLT 11 fields)."""
    return base64.b32encode(data).rstrip(b"=").translate(_FROM_RFC4648).decode("ascii")


def chars_to_bytes(chars: str, *, padded: bool = True) -> bytes:
    """Bech32 characters -> bytes.

    With ``padded`` (the way fields are written) the trailing ``5 * len % 8`` bits are padding:
    they must be fewer than 5 and all zero, otherwise the writer put in a character that carries
    no data, or data that we would silently drop. Without ``padded`` the result is zero-extended
    to the next byte boundary, which is how BOLT 11 builds the message it signs.
    """
    bits = 5 * len(chars)
    value = chars_to_int(chars)
    if padded:
        extra = bits & 7
        if extra >= 5:
            raise Bech32Error("more than 4 bits of padding")
        if value & ((1 << extra) - 1):
            raise Bech32Error("non-zero padding bits")
        return (value >> extra).to_bytes(bits >> 3, "big")
    extra = -bits & 7
    return (value << extra).to_bytes((bits + extra) >> 3, "big")


def convertbits(data: Iterable[int], frombits: int, tobits: int, *, pad: bool = True) -> list[int]:
    """General power-of-two regrouping (BIP-173 ``convertbits``), for callers that hold ints.

    The string helpers above are faster; this exists for segwit-style programs and tests.
    """
    acc = 0
    bits = 0
    out: list[int] = []
    maxv = (1 << tobits) - 1
    for value in data:
        if value < 0 or value >> frombits:
            raise Bech32Error(f"value {value} does not fit in {frombits} bits")
        acc = (acc << frombits) | value
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (tobits - bits)) & maxv)
    elif bits >= frombits or ((acc << (tobits - bits)) & maxv):
        raise Bech32Error("invalid padding")
    return out
