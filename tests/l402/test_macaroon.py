"""L402 macaroons: every shared vector, strict parsing, base64 forms, and pymacaroons as an oracle.

``pymacaroons`` is an independent implementation of the same V2 format and signature chain: what we
mint must deserialize and verify there, and what it mints must parse and verify here, byte for byte.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

import pymacaroons
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymacaroons.exceptions import MacaroonInvalidSignatureException
from pymacaroons.serializers import BinarySerializer

from boltgate.l402 import macaroon as mac
from boltgate.l402.macaroon import Identifier, Macaroon, MacaroonError

VECTORS_PATH = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "l402-macaroons.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
L1 = VECTORS["L-1"]
L1_ROOT_KEY = bytes.fromhex(L1["root_key"])
L1_CAVEATS = list(L1["caveats"])
PREIMAGE_CAVEAT = "preimage=" + L1["preimage"]


def _case(name: str) -> dict[str, Any]:
    """The inputs behind one vector, with whether its signature is genuine.

    L-1a..L-1d carry only their bytes and a note: their inputs are L-1's plus what the note says
    (a caveat appended by the holder, or L-1's first caveat changed without re-signing).
    """
    entry = VECTORS[name]
    base = {"hex": entry["hex"], "b64": entry["b64"], "sig": entry["sig"], "genuine": True}
    if "root_key_ascii" in entry:
        return base | {
            "root_key": entry["root_key_ascii"].encode(),
            "identifier": entry["identifier_ascii"].encode(),
            "location": entry["location"],
            "caveats": list(entry["caveats"]),
        }
    l1 = {"root_key": L1_ROOT_KEY, "identifier": bytes.fromhex(L1["identifier"]), "location": L1["location"]}
    extra = {
        "L-1": [],
        "L-1a": ["service1_valid_until=1767225000"],
        "L-1b": ["service1_valid_until=1767229999"],
        "L-1d": [PREIMAGE_CAVEAT],
    }
    if name == "L-1c":
        return base | l1 | {"caveats": ["services=service2:0", *L1_CAVEATS[1:]], "genuine": False}
    return base | l1 | {"caveats": L1_CAVEATS + extra[name]}


NAMES = [name for name in VECTORS if name != "about"]
CASES = {name: _case(name) for name in NAMES}
GENUINE = [name for name in NAMES if CASES[name]["genuine"]]


def _raw(name: str) -> bytes:
    return bytes.fromhex(CASES[name]["hex"])


def test_every_vector_is_covered() -> None:
    assert set(NAMES) == {"L-1", "L-1a", "L-1b", "L-1c", "L-1d", "A-1", "A-2", "A-4"}


# ----------------------------------------------------------------------------------------- vectors


@pytest.mark.parametrize("name", NAMES)
def test_vector_fields(name: str) -> None:
    case = CASES[name]
    m = mac.deserialize(_raw(name))
    assert m.location == case["location"]
    assert m.identifier == case["identifier"]
    assert m.caveats == tuple(c.encode() for c in case["caveats"])
    assert m.signature.hex() == case["sig"]


@pytest.mark.parametrize("name", NAMES)
def test_vector_serialize_and_encode_round_trip(name: str) -> None:
    case = CASES[name]
    m = mac.deserialize(_raw(name))
    assert mac.serialize(m).hex() == case["hex"]
    assert mac.encode(m) == case["b64"]
    assert base64.b64decode(case["b64"], validate=True) == _raw(name)


@pytest.mark.parametrize("name", NAMES)
def test_vector_decode_forms(name: str) -> None:
    case = CASES[name]
    expected = mac.deserialize(_raw(name))
    url_unpadded = base64.urlsafe_b64encode(_raw(name)).decode().rstrip("=")
    std_unpadded = case["b64"].rstrip("=")
    for text in (case["b64"], url_unpadded, std_unpadded, f"  {case['b64']}\r\n", f"\t{url_unpadded} "):
        assert mac.decode(text) == expected


@pytest.mark.parametrize("name", NAMES)
def test_vector_mint(name: str) -> None:
    case = CASES[name]
    minted = mac.mint(case["root_key"], case["identifier"], case["location"], case["caveats"])
    if case["genuine"]:
        assert mac.serialize(minted).hex() == case["hex"]
        assert minted == mac.deserialize(_raw(name))
    else:  # re-signing the tampered caveats gives a different signature than the one it carries
        assert minted.signature.hex() != case["sig"]
        assert minted.caveats == mac.deserialize(_raw(name)).caveats


@pytest.mark.parametrize("name", NAMES)
def test_vector_signature(name: str) -> None:
    case = CASES[name]
    m = mac.deserialize(_raw(name))
    assert mac.signature_valid(m, case["root_key"]) is case["genuine"]
    assert mac.signature_valid(m, case["root_key"] + b"x") is False
    assert mac.signature_valid(m, bytes(32)) is False
    assert mac.signature_valid(m, b"") is False


def test_l1_identifier() -> None:
    identifier = bytes.fromhex(L1["identifier"])
    payment_hash = bytes.fromhex(L1["payment_hash"])
    token_id = bytes.fromhex(L1["token_id"])
    assert mac.decode_identifier(identifier) == Identifier(0, payment_hash, token_id)
    assert mac.encode_identifier(payment_hash, token_id) == identifier
    assert hashlib.sha256(bytes.fromhex(L1["preimage"])).digest() == payment_hash
    assert mac.root_key_id(identifier).hex() == L1["secret_store_key_sha256_of_identifier"]
    assert mac.decode_identifier(mac.deserialize(_raw("L-1")).identifier).payment_hash == payment_hash


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith("L-1")])
def test_l1_family_shares_the_identifier(name: str) -> None:
    m = mac.deserialize(_raw(name))
    ident = mac.decode_identifier(m.identifier)
    assert ident.payment_hash.hex() == L1["payment_hash"]
    assert ident.token_id.hex() == L1["token_id"]
    assert mac.root_key_id(m.identifier).hex() == L1["secret_store_key_sha256_of_identifier"]


@pytest.mark.parametrize("name", ["A-1", "A-2", "A-4"])
def test_non_l402_identifiers_are_refused(name: str) -> None:
    with pytest.raises(MacaroonError, match="66 bytes"):
        mac.decode_identifier(mac.deserialize(_raw(name)).identifier)


@pytest.mark.parametrize(
    ("name", "caveat"),
    [
        ("L-1a", CASES["L-1a"]["caveats"][-1]),
        ("L-1b", CASES["L-1b"]["caveats"][-1]),
        ("L-1d", PREIMAGE_CAVEAT),
    ],
)
def test_holder_attenuation_reproduces_vector(name: str, caveat: str) -> None:
    attenuated = mac.attenuate(mac.deserialize(_raw("L-1")), caveat)
    assert mac.serialize(attenuated) == _raw(name)
    assert mac.signature_valid(attenuated, L1_ROOT_KEY)


def test_l1c_keeps_the_old_signature_and_fails() -> None:
    tampered = mac.deserialize(_raw("L-1c"))
    original = mac.deserialize(_raw("L-1"))
    assert tampered.signature == original.signature
    assert tampered.caveats[0] == b"services=service2:0"
    assert mac.signature_valid(original, L1_ROOT_KEY)
    assert not mac.signature_valid(tampered, L1_ROOT_KEY)


def test_a4_after_caveat() -> None:
    case = CASES["A-4"]
    after = VECTORS["A-4"]["after_caveat"]
    m = mac.deserialize(_raw("A-4"))
    attenuated = mac.attenuate(m, after["caveat"])
    assert attenuated.signature.hex() == after["sig"]
    assert attenuated.caveats == (after["caveat"].encode(),)
    assert mac.signature_valid(attenuated, case["root_key"])
    minted = mac.mint(case["root_key"], case["identifier"], case["location"], [after["caveat"]])
    assert minted == attenuated


# ------------------------------------------------------------------------------------ attenuation


def test_attenuate_keeps_the_signature_valid_and_the_original_unchanged() -> None:
    m = mac.mint(L1_ROOT_KEY, bytes.fromhex(L1["identifier"]), "boltgate", ["services=boltgate:0"])
    a = mac.attenuate(m, "resources=/a")
    b = mac.attenuate(a, b"boltgate_valid_until=2000000000")
    assert m.caveats == (b"services=boltgate:0",)
    assert b.caveats == (b"services=boltgate:0", b"resources=/a", b"boltgate_valid_until=2000000000")
    assert (b.location, b.identifier) == (m.location, m.identifier)
    for x in (m, a, b):
        assert mac.signature_valid(x, L1_ROOT_KEY)
        assert mac.deserialize(mac.serialize(x)) == x
    assert b == mac.mint(
        L1_ROOT_KEY, m.identifier, "boltgate", [*m.caveats, "resources=/a", "boltgate_valid_until=2000000000"]
    )
    # Dropping the last caveat (keeping the attenuated signature) does not verify.
    assert not mac.signature_valid(
        Macaroon(b.location, b.identifier, b.caveats[:-1], b.signature), L1_ROOT_KEY
    )


def _flips(data: bytes) -> list[bytes]:
    return [data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :] for i in range(len(data))]


def test_tampering_with_any_caveat_or_identifier_byte_breaks_the_signature() -> None:
    m = mac.deserialize(_raw("L-1d"))
    assert mac.signature_valid(m, L1_ROOT_KEY)
    for index, caveat in enumerate(m.caveats):
        for changed in _flips(caveat):
            caveats = (*m.caveats[:index], changed, *m.caveats[index + 1 :])
            assert not mac.signature_valid(
                Macaroon(m.location, m.identifier, caveats, m.signature), L1_ROOT_KEY
            )
    for changed in _flips(m.identifier):
        assert not mac.signature_valid(Macaroon(m.location, changed, m.caveats, m.signature), L1_ROOT_KEY)
    for changed in _flips(m.signature):
        assert not mac.signature_valid(Macaroon(m.location, m.identifier, m.caveats, changed), L1_ROOT_KEY)
    # Reordering caveats changes the chain too.
    swapped = (m.caveats[1], m.caveats[0], *m.caveats[2:])
    assert not mac.signature_valid(Macaroon(m.location, m.identifier, swapped, m.signature), L1_ROOT_KEY)


def test_location_is_not_signed() -> None:
    m = mac.deserialize(_raw("L-1"))
    assert mac.signature_valid(Macaroon("elsewhere", m.identifier, m.caveats, m.signature), L1_ROOT_KEY)


def test_str_and_bytes_caveats_are_the_same() -> None:
    a = mac.mint(b"k", b"id", "loc", ["a=1", "é=2"])
    b = mac.mint(b"k", b"id", "loc", [b"a=1", "é=2".encode()])
    assert a == b
    assert mac.attenuate(a, "x=ü") == mac.attenuate(b, "x=ü".encode())


# ---------------------------------------------------------------------------------------- pymacaroons


def _pymacaroons_verifies(text: str, root_key: bytes) -> bool:
    theirs = pymacaroons.Macaroon.deserialize(text)
    verifier = pymacaroons.Verifier()
    verifier.satisfy_general(lambda _caveat: True)
    try:
        return bool(verifier.verify(theirs, root_key))
    except MacaroonInvalidSignatureException:
        return False


def test_ours_verifies_in_pymacaroons() -> None:
    m = mac.mint(L1_ROOT_KEY, bytes.fromhex(L1["identifier"]), "boltgate", [*L1_CAVEATS, PREIMAGE_CAVEAT])
    text = mac.encode(m)  # standard base64 with padding: pymacaroons takes it as is
    assert _pymacaroons_verifies(text, L1_ROOT_KEY)
    assert not _pymacaroons_verifies(text, bytes(32))
    theirs = pymacaroons.Macaroon.deserialize(text)
    assert theirs.location == "boltgate"
    assert theirs.identifier == m.identifier
    assert [c.caveat_id_bytes for c in theirs.caveats] == list(m.caveats)
    assert theirs.signature_bytes == m.signature.hex().encode()
    assert BinarySerializer().serialize_raw(theirs) == mac.serialize(m)
    tampered = mac.encode(mac.deserialize(_raw("L-1c")))
    assert not _pymacaroons_verifies(tampered, L1_ROOT_KEY)


def test_pymacaroons_minted_parses_and_verifies_here() -> None:
    identifier = bytes.fromhex(L1["identifier"])
    theirs = pymacaroons.Macaroon(
        location="lsat", identifier=identifier, key=L1_ROOT_KEY, version=pymacaroons.MACAROON_V2
    )
    for caveat in L1_CAVEATS:
        theirs.add_first_party_caveat(caveat)
    text = theirs.serialize()  # url-safe base64 without padding
    assert "=" not in text
    ours = mac.decode(text)
    assert ours == mac.deserialize(_raw("L-1"))
    assert mac.signature_valid(ours, L1_ROOT_KEY)
    assert mac.encode(ours) == L1["b64"]
    assert mac.serialize(ours) == BinarySerializer().serialize_raw(theirs)


def test_pymacaroons_empty_location_packet() -> None:
    # pymacaroons writes an empty location packet (0x01 0x00); go-macaroon and we leave it out.
    theirs = pymacaroons.Macaroon(location="", identifier=b"id", key=b"key", version=pymacaroons.MACAROON_V2)
    raw = BinarySerializer().serialize_raw(theirs)
    assert raw[:3] == b"\x02\x01\x00"
    ours = mac.deserialize(raw)
    assert ours.location == ""
    assert mac.signature_valid(ours, b"key")
    assert mac.serialize(ours) == b"\x02" + raw[3:]
    assert mac.deserialize(mac.serialize(ours)) == ours
    assert _pymacaroons_verifies(mac.encode(ours), b"key")


locations = st.text(max_size=40)
identifiers = st.binary(max_size=200)
caveat_lists = st.lists(st.binary(max_size=300), max_size=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    root_key=st.binary(min_size=1, max_size=64),
    location=locations.filter(bool),
    identifier=identifiers,
    caveats=st.lists(st.text(max_size=200), max_size=8),  # pymacaroons wants UTF-8 caveats
)
def test_random_macaroons_match_pymacaroons(
    root_key: bytes, location: str, identifier: bytes, caveats: list[str]
) -> None:
    ours = mac.mint(root_key, identifier, location, caveats)
    theirs = pymacaroons.Macaroon(
        location=location, identifier=identifier, key=root_key, version=pymacaroons.MACAROON_V2
    )
    for caveat in caveats:
        theirs.add_first_party_caveat(caveat)
    assert mac.serialize(ours) == BinarySerializer().serialize_raw(theirs)
    assert mac.decode(theirs.serialize()) == ours


# ------------------------------------------------------------------------------------- round trips


@given(root_key=st.binary(max_size=64), location=locations, identifier=identifiers, caveats=caveat_lists)
def test_mint_round_trip(root_key: bytes, location: str, identifier: bytes, caveats: list[bytes]) -> None:
    m = mac.mint(root_key, identifier, location, caveats)
    assert mac.deserialize(mac.serialize(m)) == m
    assert mac.decode(mac.encode(m)) == m
    assert mac.signature_valid(m, root_key)
    assert len(m.signature) == 32


@given(
    location=locations,
    identifier=identifiers,
    caveats=caveat_lists,
    signature=st.binary(min_size=32, max_size=32),
)
def test_any_macaroon_round_trip(
    location: str, identifier: bytes, caveats: list[bytes], signature: bytes
) -> None:
    m = Macaroon(location, identifier, tuple(caveats), signature)
    raw = mac.serialize(m)
    assert mac.deserialize(raw) == m
    assert mac.deserialize(bytearray(raw)) == m  # type: ignore[arg-type]  # bytes-like input is copied
    assert mac.decode(base64.urlsafe_b64encode(raw).decode().rstrip("=")) == m


def _parse_or_error(raw: bytes) -> Macaroon | None:
    try:
        m = mac.deserialize(raw)
    except MacaroonError:
        return None
    assert mac.deserialize(mac.serialize(m)) == m
    return m


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_random_bytes_never_raise_anything_else(data: bytes) -> None:
    _parse_or_error(data)
    _parse_or_error(b"\x02" + data)


@settings(max_examples=300)
@given(name=st.sampled_from(NAMES), data=st.data())
def test_mutated_vectors_never_raise_anything_else(name: str, data: st.DataObject) -> None:
    raw = bytearray(_raw(name))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw)))
        action = data.draw(st.sampled_from(["set", "insert", "delete"]))
        if action == "insert" or at == len(raw):
            raw.insert(at, data.draw(st.integers(0, 255)))
        elif action == "set":
            raw[at] = data.draw(st.integers(0, 255))
        else:
            del raw[at]
    _parse_or_error(bytes(raw))


@settings(max_examples=200)
@given(st.text(max_size=200))
def test_random_text_never_raises_anything_else(text: str) -> None:
    with contextlib.suppress(MacaroonError):
        mac.decode(text)


# ------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("name", NAMES)
def test_every_truncation_is_refused(name: str) -> None:
    raw = _raw(name)
    for end in range(len(raw)):
        with pytest.raises(MacaroonError):
            mac.deserialize(raw[:end])
        if end:
            with pytest.raises(MacaroonError):
                mac.decode(base64.b64encode(raw[:end]).decode())


def test_trailing_bytes_are_refused() -> None:
    for extra in (b"\x00", b"\x06\x20" + bytes(32), b"x"):
        with pytest.raises(MacaroonError, match="trailing"):
            mac.deserialize(_raw("A-2") + extra)


SIG = b"\x06\x20" + bytes(32)
HEADER = b"\x02\x01\x04LSAT\x02\x04AA==\x00"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "empty"),
        (b"\x01" + HEADER[1:] + b"\x00" + SIG, "not a V2"),
        (b"\x00", "not a V2"),
        (b"{", "not a V2"),
        (b"\x02", "truncated"),
        (b"\x02\x01", "truncated"),
        (b"\x02\x01\x10LSAT", "past the end"),
        (b"\x02\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "overflows"),
        (b"\x02\x01" + b"\xff" * 20, "overflows"),
        (b"\x02\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "past the end"),
        (b"\x02\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", "overflows"),
        (b"\x02\x01\x84\x00LSAT\x02\x04AA==\x00\x00" + SIG, "non-minimal"),
        (b"\x02\x81\x00", "non-minimal"),
        (b"\x02\x01\x84", "truncated"),
        (b"\x02\x01\x04LSAT\x00\x00" + SIG, "no identifier"),
        (b"\x02\x00\x00" + SIG, "no identifier"),
        (b"\x02\x03\x01x\x02\x01y\x00\x00" + SIG, "unknown field type 3"),
        (b"\x02\x02\x01y\x01\x01x\x00\x00" + SIG, "out of order"),
        (b"\x02\x01\x01x\x01\x01x\x02\x01y\x00\x00" + SIG, "out of order"),
        (b"\x02\x02\x01y\x02\x01y\x00\x00" + SIG, "out of order"),
        (b"\x02\x01\x01x\x04\x01v\x00\x00" + SIG, "unexpected field type 4"),
        (b"\x02\x02\x01y\x04\x01v\x00\x00" + SIG, "unexpected field type 4"),
        (b"\x02\x02\x01y\x06\x20" + bytes(32), "unexpected field type 6"),
        (b"\x02\x02\x01y\x80\x01\x01x\x00\x00" + SIG, "unknown field type 128"),
        (HEADER + b"\x02\x03a=b\x04\x02vv\x00\x00" + SIG, "third-party caveats are not supported"),
        (
            HEADER + b"\x01\x04http\x02\x03a=b\x04\x02vv\x00\x00" + SIG,
            "third-party caveats are not supported",
        ),
        (HEADER + b"\x01\x04http\x02\x03a=b\x00\x00" + SIG, "third-party caveats are not supported"),
        (HEADER + b"\x04\x02vv\x00\x00" + SIG, "third-party caveats are not supported"),
        (HEADER + b"\x02\x03a=b\x02\x03c=d\x00\x00" + SIG, "out of order"),
        (HEADER + b"\x02\x03a=b\x03\x01z\x00\x00" + SIG, "unknown field type 3"),
        (HEADER + b"\x05\x01z\x00\x00" + SIG, "unknown field type 5"),
        (HEADER + SIG, "unexpected field type 6 in caveat"),
        (HEADER + b"\x00", "truncated"),
        (HEADER + b"\x00\x02\x03a=b", "expected the signature"),
        (HEADER + b"\x00\x06\x1f" + bytes(31), "32 bytes, got 31"),
        (HEADER + b"\x00\x06\x21" + bytes(33), "32 bytes, got 33"),
        (HEADER + b"\x00\x06\x00", "32 bytes, got 0"),
        (HEADER + b"\x00\x06\x20" + bytes(31), "past the end"),
        (b"\x02\x01\x02\xff\xfe\x02\x01y\x00\x00" + SIG, "not UTF-8"),
        (b"\x02" + bytes(100 * 1024), "more than 8192"),
        (HEADER + b"\x02\x03a=b\x00" * 1400 + b"\x00" + SIG, "more than 8192"),
    ],
)
def test_bad_binary(raw: bytes, message: str) -> None:
    with pytest.raises(MacaroonError, match=message):
        mac.deserialize(raw)


def test_the_hand_made_header_is_well_formed() -> None:
    # The fixtures above are one change away from this valid macaroon (the A-2 bytes).
    m = mac.deserialize(HEADER + b"\x00" + SIG)
    assert (m.location, m.identifier, m.caveats) == ("LSAT", b"AA==", ())
    assert _raw("A-2")[:-34] == HEADER + b"\x00"
    assert mac.deserialize(HEADER + b"\x02\x03a=b\x00\x00" + SIG).caveats == (b"a=b",)


def test_size_limits_are_inclusive() -> None:
    room = mac.MAX_BINARY_SIZE - len(HEADER) - 1 - len(SIG) - 4  # one caveat, 2-byte length varint
    raw = HEADER + b"\x02" + bytes([0x80 | (room & 0x7F), room >> 7]) + b"c" * room + b"\x00\x00" + SIG
    assert len(raw) == mac.MAX_BINARY_SIZE
    m = mac.deserialize(raw)
    assert mac.serialize(m) == raw
    with pytest.raises(MacaroonError, match="more than 8192"):
        mac.serialize(mac.attenuate(m, b""))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("  \n", "empty"),
        ("!!!!", "not valid base64"),
        ("AgEE bHNh", "not valid base64"),
        ("AgE", "empty|truncated|past|not"),  # decodes to 2 bytes: a truncated macaroon
        ("A", "bad length"),
        ("AgEEb", "bad length"),
        ("AgE=EEEE", "not valid base64"),
        ("AB=", "padding"),
        ("AB===", "not valid base64"),
        ("AB+-", "mixes"),
        ("AB/_", "mixes"),
        ("AgEE\u00e9", "not ASCII"),
        ("\u0660\u0661", "not ASCII"),
        ("A" * (12 * 1024 + 1), "more than 12288"),
        (base64.b64encode(bytes(100 * 1024)).decode(), "more than 12288"),
        (base64.b64encode(b"\x02" + bytes(9215)).decode(), "more than 8192"),
        (base64.b64encode(b"hello world").decode(), "not a V2"),
        (bytes.fromhex(CASES["A-2"]["hex"]).hex(), "not a V2|not valid"),
    ],
)
def test_bad_text(text: str, message: str) -> None:
    with pytest.raises(MacaroonError, match=message):
        mac.decode(text)


# ---------------------------------------------------------------------------------------- identifier


def test_identifier_layout() -> None:
    payment_hash, token_id = bytes(range(1, 33)), bytes(range(32, 0, -1))
    identifier = mac.encode_identifier(payment_hash, token_id)
    assert len(identifier) == mac.IDENTIFIER_SIZE == 66
    assert identifier[:2] == b"\x00\x00"
    assert identifier[2:34] == payment_hash
    assert identifier[34:] == token_id
    assert mac.decode_identifier(identifier) == Identifier(
        version=0, payment_hash=payment_hash, token_id=token_id
    )
    assert mac.root_key_id(identifier) == hashlib.sha256(identifier).digest()


@pytest.mark.parametrize(
    ("payment_hash", "token_id"), [(bytes(31), bytes(32)), (bytes(32), bytes(33)), (b"", b"")]
)
def test_encode_identifier_refuses_wrong_sizes(payment_hash: bytes, token_id: bytes) -> None:
    with pytest.raises(MacaroonError, match="32 bytes"):
        mac.encode_identifier(payment_hash, token_id)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (bytes(65), "66 bytes, got 65"),
        (bytes(67), "66 bytes, got 67"),
        (b"", "66 bytes, got 0"),
        (b"\x00\x01" + bytes(64), "version 1"),
        (b"\x01\x00" + bytes(64), "version 256"),
    ],
)
def test_decode_identifier_refuses(data: bytes, message: str) -> None:
    with pytest.raises(MacaroonError, match=message):
        mac.decode_identifier(data)


def test_serialize_refuses_a_bad_signature() -> None:
    with pytest.raises(MacaroonError, match="32 bytes"):
        mac.serialize(Macaroon("loc", b"id", (), bytes(31)))


def test_errors_are_value_errors() -> None:
    assert issubclass(MacaroonError, ValueError)
