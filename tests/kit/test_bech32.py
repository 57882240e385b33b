"""Bech32 helpers: BIP-173 vectors, the integer fast paths against the reference code, 5<->8 bits."""

from __future__ import annotations

import time

import bech32 as reference  # the BIP-173 reference implementation (installed with the bolt11 package)
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from boltgate.kit import bech32
from boltgate.kit.bech32 import Bech32Error

# BIP-173 "Test vectors": valid bech32 strings (any case, checksum constant 1).
BIP173_VALID = [
    "A12UEL5L",
    "a12uel5l",
    "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
    "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
    "11" + "q" * 82 + "c8247j",  # 90 characters, the BIP-173 maximum
    "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
    "?1ezyfcl",
]

# BIP-173 invalid strings, with the reason the BIP gives.
BIP173_INVALID = [
    ("\x201nwldj5", "HRP character out of range"),
    ("\x7f1axkwrx", "HRP character out of range"),
    ("\x801eym55h", "HRP character out of range"),
    ("pzry9x0s0muk", "No separator character"),
    ("1pzry9x0s0muk", "Empty HRP"),
    ("x1b4n0q5v", "Invalid data character"),
    ("li1dgmt3", "Too short checksum"),
    ("de1lg7wt\xff", "Invalid character in checksum"),
    ("A1G7SGD8", "checksum calculated with uppercase form of HRP"),
    ("10a06t8", "empty HRP"),
    ("1qzzfhee", "empty HRP"),
]

# BIP-173 says this one is invalid only because it is longer than 90 characters; BOLT 11 lifts
# that limit, so our decoder must accept it (the checksum is right).
BIP173_TOO_LONG = (
    "an84characterslonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1569pvx"
)


@pytest.mark.parametrize("string", BIP173_VALID)
def test_bip173_valid(string: str) -> None:
    hrp, data = bech32.decode(string)
    sep = string.rfind("1")
    assert hrp == string[:sep].lower()
    assert data == string[sep + 1 : -6].lower()
    assert bech32.encode(hrp, data) == string.lower()
    assert bech32.verify_checksum(hrp, string[sep + 1 :].lower())


@pytest.mark.parametrize(("string", "reason"), BIP173_INVALID)
def test_bip173_invalid(string: str, reason: str) -> None:
    with pytest.raises(Bech32Error):
        bech32.decode(string)


def test_no_length_limit() -> None:
    assert reference.bech32_decode(BIP173_TOO_LONG) == (None, None)  # the reference enforces 90
    hrp, data = bech32.decode(BIP173_TOO_LONG)
    assert hrp == BIP173_TOO_LONG[: BIP173_TOO_LONG.rfind("1")]
    assert bech32.encode(hrp, data) == BIP173_TOO_LONG


@pytest.mark.parametrize(
    ("string", "message"),
    [
        ("A12uel5l", "mixed"),
        ("a12uel5", "shorter than the checksum"),
        ("a12uel5m", "invalid checksum"),
        ("a12ueb5l", "invalid bech32 character 'b'"),
        ("a12uel5\u00e9", "non-ASCII"),
        ("a b1qqqqqqqq", "human-readable"),
        ("a12u_l5l", "invalid bech32 character '_'"),  # int(..., 32) would accept "_"
        ("a12u l5l", "invalid bech32 character ' '"),
    ],
)
def test_decode_rejections(string: str, message: str) -> None:
    with pytest.raises(Bech32Error, match=message):
        bech32.decode(string)


def test_step_has_period_1023() -> None:
    # The checksum folds inputs to 1023 words; that is only right if STEP^1023 is the identity.
    for bit in range(5):
        chk = 1 << bit
        for _ in range(bech32._PERIOD):
            chk = bech32._step(chk)
        assert chk == 1 << bit


def _reference_polymod(hrp: str, values: list[int]) -> int:
    return reference.bech32_polymod(reference.bech32_hrp_expand(hrp) + values)


@settings(max_examples=80, deadline=None)
@given(
    hrp=st.text(
        alphabet=st.characters(min_codepoint=33, max_codepoint=126).map(str.lower), min_size=1, max_size=20
    ),
    values=st.one_of(
        st.binary(max_size=120),
        st.binary(min_size=1000, max_size=2500),  # past the 1023-word period of the folded checksum
    ).map(lambda raw: [byte & 31 for byte in raw]),
)
def test_checksum_matches_reference(hrp: str, values: list[int]) -> None:
    data = bech32.values_to_chars(values)
    assert bech32.encode(hrp, data) == reference.bech32_encode(hrp, values)
    encoded = bech32.encode(hrp, data)
    assert bech32.decode(encoded) == (hrp, data)
    assert bech32.decode(encoded.upper()) == (hrp, data)
    assert bech32._polymod((bech32._hrp_prefix(hrp) << 5 * len(values)) | bech32.chars_to_int(data)) == (
        _reference_polymod(hrp, values)
    )
    length = len(values)
    assert bech32.encode_int(hrp, bech32.chars_to_int(data), length) == encoded


def test_long_inputs() -> None:
    values = [(i * 7 + i // 3) & 31 for i in range(10_000)]  # ~10 periods of the folded checksum
    data = bech32.values_to_chars(values)
    encoded = bech32.encode("lnbc", data)
    assert encoded == reference.bech32_encode("lnbc", values)
    assert bech32.decode(encoded) == ("lnbc", data)
    # Folding takes log2(n) passes: megabytes of input are checked quickly (this took seconds
    # when the fold removed one period per pass).
    huge = "lnbc1" + "q" * 4_000_000
    started = time.perf_counter()
    with pytest.raises(Bech32Error, match="checksum"):
        bech32.decode(huge)
    assert time.perf_counter() - started < 1.0


@settings(max_examples=100, deadline=None)
@given(hrp=st.sampled_from(["lnbc", "a", "bc"]), values=st.lists(st.integers(0, 31), min_size=1, max_size=80))
def test_single_character_change_is_detected(hrp: str, values: list[int]) -> None:
    encoded = bech32.encode(hrp, bech32.values_to_chars(values))
    sep = len(hrp)
    for index in range(sep + 1, len(encoded)):
        for char in "qp7l":
            if encoded[index] != char:
                changed = encoded[:index] + char + encoded[index + 1 :]
                with pytest.raises(Bech32Error, match="checksum"):
                    bech32.decode(changed)


def _naive_chars(value: int) -> str:
    out = []
    while True:
        value, digit = divmod(value, 32)
        out.append(bech32.CHARSET[digit])
        if not value:
            return "".join(reversed(out))


@settings(max_examples=200, deadline=None)
@given(value=st.integers(0, 2**2000), extra=st.integers(0, 5))
def test_int_chars_round_trip(value: int, extra: int) -> None:
    chars = bech32.int_to_chars(value)
    assert len(chars) == max(1, -(-value.bit_length() // 5))
    assert bech32.chars_to_int(chars) == value
    padded = bech32.int_to_chars(value, len(chars) + extra)
    assert padded == "q" * extra + chars
    assert bech32.chars_to_int(padded) == value
    assert chars == _naive_chars(value)


def test_int_to_chars_edges() -> None:
    assert bech32.int_to_chars(0) == "q"
    assert bech32.int_to_chars(0, 0) == ""
    assert bech32.int_to_chars(0, 3) == "qqq"
    assert bech32.int_to_chars(31) == "l"
    assert bech32.int_to_chars(32) == "pq"
    assert bech32.int_to_chars(1496314658, 7) == "pvjluez"  # the BOLT 11 examples' timestamp
    assert bech32.chars_to_int("") == 0
    with pytest.raises(Bech32Error, match="negative"):
        bech32.int_to_chars(-1)
    with pytest.raises(Bech32Error, match="does not fit"):
        bech32.int_to_chars(32, 1)
    with pytest.raises(Bech32Error, match="does not fit"):
        bech32.int_to_chars(1, 0)
    with pytest.raises(Bech32Error, match="'b'"):
        bech32.chars_to_int("qqb")
    with pytest.raises(Bech32Error, match="'Q'"):
        bech32.chars_to_int("Q")  # the integer helpers take lowercase only


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=700))
def test_bytes_chars_round_trip_matches_convertbits(data: bytes) -> None:
    chars = bech32.bytes_to_chars(data)
    values = reference.convertbits(data, 8, 5, True)
    assert values is not None
    assert chars == bech32.values_to_chars(values)
    assert bech32.convertbits(data, 8, 5) == values
    assert bech32.chars_to_bytes(chars) == data
    assert bytes(bech32.convertbits(values, 5, 8, pad=False)) == data
    assert bech32.chars_to_values(chars) == bytes(values)
    assert bech32.chars_to_values(chars.upper()) == bytes(values)
    # Unpadded (BOLT 11 signing): zero bits appended up to the next byte.
    unpadded = bech32.chars_to_bytes(chars, padded=False)
    assert unpadded[: len(data)] == data
    assert len(unpadded) == -(-5 * len(chars) // 8)
    assert not any(unpadded[len(data) :])


@pytest.mark.parametrize(
    ("data", "chars"),
    [
        (b"", ""),
        (b"\x00", "qq"),  # 8 bits -> 2 characters, 2 padding bits
        (b"\xff", "lu"),
        (b"\xff" * 5, "llllllll"),  # 40 bits: no padding at all
        (b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09", "qqqsyqcyq5rqwzqf"),  # the spec's payment hash prefix
    ],
)
def test_bytes_to_chars_examples(data: bytes, chars: str) -> None:
    assert bech32.bytes_to_chars(data) == chars
    assert bech32.chars_to_bytes(chars) == data


def test_chars_to_bytes_padding_rules() -> None:
    assert bech32.chars_to_bytes("lu") == b"\xff"
    with pytest.raises(Bech32Error, match="non-zero padding"):
        bech32.chars_to_bytes("ll")  # the last 2 bits of 10 are padding and must be 0
    with pytest.raises(Bech32Error, match="more than 4 bits"):
        bech32.chars_to_bytes("q")  # 5 bits: a character that carries no data
    with pytest.raises(Bech32Error, match="more than 4 bits"):
        bech32.chars_to_bytes("qqq")  # 15 bits = 1 byte + 7 bits
    assert bech32.chars_to_bytes("q", padded=False) == b"\x00"
    assert bech32.chars_to_bytes("l", padded=False) == b"\xf8"
    assert bech32.chars_to_bytes("", padded=False) == b""


@pytest.mark.parametrize(
    ("values", "frombits", "tobits", "pad", "expected"),
    [
        ([], 8, 5, True, []),
        ([0xFF], 8, 5, True, [31, 28]),
        ([0xFF], 8, 5, False, None),  # 3 leftover bits that are not zero
        ([0x00], 8, 5, False, [0]),  # 3 leftover zero bits are fine without padding
        ([31, 28], 5, 8, False, [0xFF]),
        ([31, 31], 5, 8, False, None),  # non-zero padding
        ([31, 28, 0], 5, 8, False, None),  # a whole extra group (>= 5 bits) of padding
        ([31, 28, 0], 5, 8, True, [0xFF, 0x00]),
        ([1, 2, 3], 8, 8, False, [1, 2, 3]),
        ([0b101], 3, 1, False, [1, 0, 1]),
    ],
)
def test_convertbits(
    values: list[int], frombits: int, tobits: int, pad: bool, expected: list[int] | None
) -> None:
    ref = reference.convertbits(values, frombits, tobits, pad)
    if expected is None:
        assert ref is None
        with pytest.raises(Bech32Error):
            bech32.convertbits(values, frombits, tobits, pad=pad)
    else:
        assert ref == expected
        assert bech32.convertbits(values, frombits, tobits, pad=pad) == expected


@pytest.mark.parametrize("value", [-1, 256])
def test_convertbits_rejects_out_of_range(value: int) -> None:
    assert reference.convertbits([value], 8, 5) is None
    with pytest.raises(Bech32Error, match="does not fit"):
        bech32.convertbits([value], 8, 5)


def test_values_and_chars() -> None:
    assert bech32.values_to_chars(range(32)) == bech32.CHARSET
    assert bech32.chars_to_values(bech32.CHARSET.upper()) == bytes(range(32))
    with pytest.raises(Bech32Error, match="5 bits"):
        bech32.values_to_chars([32])
    with pytest.raises(Bech32Error, match="'b'"):
        bech32.chars_to_values("qpb")
    with pytest.raises(Bech32Error, match="'\u00e9'"):
        bech32.chars_to_values("q\u00e9")


def test_segwit_program_through_convertbits() -> None:
    # A BIP-173 style address built by the reference, read back with our helpers.
    program = bytes.fromhex("751e76e8199196d454941c45d1b3a323f1433bd6")
    address = reference.encode("bc", 0, program)
    assert address is not None
    hrp, data = bech32.decode(address)
    values = bech32.chars_to_values(data)
    assert hrp == "bc" and values[0] == 0
    assert bytes(bech32.convertbits(values[1:], 5, 8, pad=False)) == program
    assert bech32.chars_to_bytes(data[1:]) == program
