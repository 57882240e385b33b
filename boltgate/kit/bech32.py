"""Bech32 (BIP-173) without the 90-character limit, fast enough for BOLT 11.

BOLT 11 invoices are bech32 strings of several hundred characters, so the BIP-173 length limit
does not apply (the spec says so) and the textbook implementation, which walks the string one
5-bit word at a time in Python, would be the slowest part of an invoice codec. Everything here
works on whole Python integers instead, whose bulk operations run in C:

* characters -> integer: map the bech32 alphabet onto the base-32 digits ``0-9a-v`` with
  ``bytes.translate`` and call ``int(digits, 32)``;
* integer -> characters: "spread" the 5-bit groups into one byte each with log2(n) mask-and-
  shift steps, then ``to_bytes`` and ``translate`` back to the alphabet;
* checksum: the BIP-173 polymod is linear over GF(2), so bit ``j`` of the final state is the
  parity of (input bits AND a fixed mask), i.e. ``(value & mask_j).bit_count() & 1`` for 30
  precomputed masks. The shift-register step has period 1023 (the BCH code length), so masks
  over 1023 words serve inputs of any length after XOR-folding them to that period.

Only bech32 (constant 1) is implemented: BOLT 11 predates bech32m and keeps using bech32.
"""

from __future__ import annotations

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
    "encode_int",
    "int_to_chars",
    "values_to_chars",
    "verify_checksum",
]

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
"""The 32 bech32 characters; the index of a character is its 5-bit value."""

_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_PERIOD = 1023  # STEP^1023 is the identity (checked by the tests)
_PERIOD_BITS = 5 * _PERIOD


class Bech32Error(ValueError):
    """A string that is not valid bech32, or data that cannot be converted losslessly."""


def _step(chk: int) -> int:
    """One BIP-173 polymod step with a zero input word: shift left 5, reduce by the generator."""
    top = chk >> 25
    chk = (chk & 0x1FFFFFF) << 5
    for i in range(5):
        if (top >> i) & 1:
            chk ^= _GENERATOR[i]
    return chk


def _parity_masks() -> tuple[int, ...]:
    """Mask ``j`` has bit ``p`` set iff input bit ``p`` (counted from the end) flips state bit ``j``.

    Input bit ``p = 5d + b`` is bit ``b`` of the word ``d`` places before the end; it reaches the
    final state as ``STEP^d(1 << b)``. Compute those 5115 states, lay them out as 4-byte words and
    read each state bit as a column with a strided slice.
    """
    chains = [1 << b for b in range(5)]
    states = bytearray()
    for _ in range(_PERIOD):
        for chk in chains:
            states += chk.to_bytes(4, "big")
        chains = [_step(chk) for chk in chains]
    masks = []
    for j in range(30):
        to_ascii = bytes(0x30 + ((byte >> (j & 7)) & 1) for byte in range(256))
        column = bytes(states[3 - (j >> 3) :: 4]).translate(to_ascii)  # b"0"/b"1", p ascending
        masks.append(int(column[::-1], 2))
    return tuple(masks)


_MASKS = _parity_masks()


def _polymod(value: int) -> int:
    """BIP-173 polymod of the 5-bit words of ``value`` (most significant word first).

    The caller puts a 1 word in front (the polymod's initial state) so leading zero words count.
    """
    bits = value.bit_length()
    while bits > _PERIOD_BITS:
        # Fold at a whole number of periods near the middle: log2(n) passes, not n/5115 (which
        # made a multi-megabyte string take seconds). Word d+1023k acts like word d.
        split = ((bits // _PERIOD_BITS + 1) >> 1) * _PERIOD_BITS
        value = (value & ((1 << split) - 1)) ^ (value >> split)
        bits = value.bit_length()
    state = 0
    for j, mask in enumerate(_MASKS):
        state |= ((value & mask).bit_count() & 1) << j
    return state


# bytes.translate tables. Everything outside the alphabet becomes "#", which int() rejects
# (mapping only the alphabet would let int() accept "_", spaces and other base-32 digits).
_DIGITS = b"0123456789abcdefghijklmnopqrstuv"
_CHARSET_BYTES = CHARSET.encode("ascii")
_TO_DIGIT = bytearray(b"#" * 256)
_TO_VALUE = bytearray(b"\xff" * 256)
for _i, _c in enumerate(_CHARSET_BYTES):
    _TO_DIGIT[_c] = _DIGITS[_i]
    _TO_VALUE[_c] = _i
_TO_DIGIT_UPPER = bytes(_TO_DIGIT)
_TO_VALUE_UPPER = bytes(_TO_VALUE)
for _i, _c in enumerate(CHARSET.upper().encode("ascii")):
    _TO_VALUE[_c] = _i
_TO_DIGIT_LOWER = bytes(_TO_DIGIT)
_TO_VALUE_ANY = bytes(_TO_VALUE)
del _TO_DIGIT_UPPER, _TO_VALUE_UPPER
_FROM_VALUE = _CHARSET_BYTES + bytes(224)
# Human-readable part expansion (BIP-173): high 3 bits of each character, 0, low 5 bits.
_HRP_HIGH = bytes(_DIGITS[c >> 5] for c in range(128)) + b"#" * 128
_HRP_LOW = bytes(_DIGITS[c & 31] for c in range(128)) + b"#" * 128

_SPREAD_STEPS: dict[int, tuple[tuple[int, int], ...]] = {}


def _spread_steps(size: int) -> tuple[tuple[int, int], ...]:
    """Mask/shift pairs that move ``size`` (a power of two) 5-bit groups to 8-bit slots.

    Each step splits every block of 2h groups in two and moves the upper half up by 3h bits,
    halving h until the groups stand alone.
    """
    steps = []
    half = size >> 1
    while half:
        low = 0
        for block in range(size // (2 * half)):
            low |= ((1 << (5 * half)) - 1) << (16 * half * block)
        steps.append((low, 3 * half))
        half >>= 1
    return tuple(steps)


def _hrp_prefix(hrp: str) -> int:
    """The checksum's leading words as an integer: initial 1, then the expanded ``hrp``."""
    raw = hrp.encode("ascii")
    words = raw.translate(_HRP_HIGH) + b"0" + raw.translate(_HRP_LOW)
    return (1 << (5 * len(words))) | int(words, 32)


def _checksum_int(hrp: str, data: int, length: int) -> int:
    """The 30-bit checksum for ``length`` words of ``data`` under lowercase ``hrp``."""
    return _polymod(((_hrp_prefix(hrp) << (5 * length)) | data) << 30) ^ 1


def int_to_chars(value: int, length: int | None = None) -> str:
    """``value`` as big-endian bech32 characters: exactly ``length`` of them, or as few as possible.

    The shortest form of 0 is one character, never the empty string.
    """
    if value < 0:
        raise Bech32Error("negative value")
    if length is None:
        length = max(1, -(-value.bit_length() // 5))
    elif value >> (5 * length):
        raise Bech32Error(f"value does not fit in {length} characters")
    if length == 0:
        return ""
    size = 1 << (length - 1).bit_length()
    steps = _SPREAD_STEPS.get(size)
    if steps is None:
        steps = _SPREAD_STEPS.setdefault(size, _spread_steps(size))
    for low_mask, shift in steps:
        low = value & low_mask
        value = low | ((value ^ low) << shift)
    return value.to_bytes(size, "big")[size - length :].translate(_FROM_VALUE).decode("ascii")


def chars_to_int(chars: str) -> int:
    """Big-endian integer of lowercase bech32 characters (0 for the empty string)."""
    if not chars:
        return 0
    try:
        return int(chars.encode("ascii").translate(_TO_DIGIT_LOWER), 32)
    except (UnicodeEncodeError, ValueError):
        bad = next(c for c in chars if c not in CHARSET)
        raise Bech32Error(f"invalid bech32 character {bad!r}") from None


def bytes_to_chars(data: bytes) -> str:
    """8-bit bytes -> bech32 characters, zero-padding the last 5-bit group (BOLT 11 fields)."""
    length = -(-8 * len(data) // 5)
    return int_to_chars(int.from_bytes(data, "big") << (5 * length - 8 * len(data)), length)


def chars_to_bytes(chars: str, *, padded: bool = True) -> bytes:
    """Lowercase bech32 characters -> bytes.

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


def create_checksum(hrp: str, data: str) -> str:
    """The six checksum characters for lowercase ``hrp`` and ``data`` (bech32 characters)."""
    return int_to_chars(_checksum_int(hrp, chars_to_int(data), len(data)), 6)


def verify_checksum(hrp: str, data: str) -> bool:
    """True when ``data`` (lowercase bech32 characters, checksum included) checks out."""
    return _polymod((_hrp_prefix(hrp) << (5 * len(data))) | chars_to_int(data)) == 1


def encode(hrp: str, data: str) -> str:
    """``hrp + "1" + data + checksum`` for lowercase ``hrp`` and ``data`` (bech32 characters)."""
    return f"{hrp}1{data}{create_checksum(hrp, data)}"


def encode_int(hrp: str, data: int, length: int) -> str:
    """Like :func:`encode` for data held as an integer of ``length`` 5-bit words.

    Encoders that assemble their payload with shifts and ORs skip the string round trip.
    """
    checked = (data << 30) | _checksum_int(hrp, data, length)
    return f"{hrp}1{int_to_chars(checked, length + 6)}"


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
    if not hrp.isprintable() or " " in hrp:
        raise Bech32Error("invalid character in human-readable part")
    data = lower[sep + 1 :]
    if len(data) < 6:
        raise Bech32Error("data part shorter than the checksum")
    if not verify_checksum(hrp, data):
        raise Bech32Error("invalid checksum")
    return hrp, data[:-6]


def chars_to_values(chars: str) -> bytes:
    """Bech32 characters (either case) -> their 5-bit values, one per byte."""
    values = chars.encode("ascii", "replace").translate(_TO_VALUE_ANY)
    if 0xFF in values:
        bad = chars[values.index(0xFF)]
        raise Bech32Error(f"invalid bech32 character {bad!r}")
    return values


def values_to_chars(values: Iterable[int]) -> str:
    """5-bit values -> bech32 characters."""
    raw = bytes(values)
    if raw and max(raw) > 31:
        raise Bech32Error("value does not fit in 5 bits")
    return raw.translate(_FROM_VALUE).decode("ascii")


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
