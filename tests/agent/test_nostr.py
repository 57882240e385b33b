"""BIP-340 signatures and NIP-01 events: the official BIP-340 vectors, real Nostr events, hand-built ids."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT
from hypothesis import given, settings
from hypothesis import strategies as st

from boltgate.agent import nostr
from boltgate.agent.nostr import NostrError

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"
ROWS = list(csv.DictReader((VECTORS / "bip340-test-vectors.csv").read_text().replace("\r", "").splitlines()))
OFF_CURVE_ROWS = {"5", "14"}  # "public key not on the curve", "... not a valid X coordinate ..."
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

SECRET_A = bytes.fromhex("11" * 32)
SECRET_B = bytes.fromhex("22" * 32)
PUB_A = nostr.pubkey_of(SECRET_A)
PUB_B = nostr.pubkey_of(SECRET_B)
AUX = bytes(32)

# Real events (nbd-wtf/nostr-tools fakejson.test.ts): ids and signatures made by other software. The third is
# listed there as kind 12720, but that test only reads the field: its id and signature are of the real kind 0 event.
FIATJAF = "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d"
REAL_EVENTS: list[dict[str, Any]] = [
    {
        "id": "fef2a50f7d9d3d5a5f38ee761bc087ec16198d3f0140df6d1e8193abf7c2b146",
        "pubkey": FIATJAF,
        "created_at": 1671150419,
        "kind": 1,
        "tags": [],
        "content": "so did we cut all corners and p2p stuff in order to make a decentralized social network that was fast and worked, but in the end what we got was a lot of very slow clients that can't handle the traffic of one jack dorsey tweet?",
        "sig": "ca62629d189edebb8f0811cfa0ac53015013df5f305dcba3f411ba15cfc4074d8c2d517ee7d9e81c9eb72a7328bfbe31c9122156397565ac55e740404e2b1fe7",
    },
    {
        "id": "f40bdd0905137ad60482537e260890ab50b0863bf16e67cf9383f203bd26c96f",
        "pubkey": FIATJAF,
        "created_at": 1672506879,
        "kind": 1,
        "tags": [],
        "content": 'a bunch of mfs interacted with my post using what I assume were "likes": https://nostr.build/i/964.png',
        "sig": "8b825d2d4096f0643b18ca39da59ec07a682cd8a3e717f119c845037573d98099f5bea94ec7ddedd5600c8020144a255ed52882a911f7f7ada6d6abb3c0a1eb4",
    },
    {
        "id": "b52f93f6dfecf9d81f59062827cd941412a0e8398dda60baf960b17499b88900",
        "pubkey": FIATJAF,
        "created_at": 1671217411,
        "kind": 0,
        "tags": [],
        "content": '{"name":"fiatjaf","about":"buy my merch at fiatjaf store","picture":"https://fiatjaf.com/static/favicon.jpg","nip05":"_@fiatjaf.com"}',
        "sig": "fc1ea5d45fa5ed0526faed06e8fc7a558e60d1b213e9714f440828584ee999b93407092f9b04deea7e504fa034fc0428f31f7f0f95417b3280ebe6004b80b470",
    },
]


def code_of(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(NostrError) as info:
        call(*args, **kwargs)
    return info.value.code


# --- BIP-340 ---------------------------------------------------------------------------------------


def test_vector_file_is_the_2023_version_with_19_rows() -> None:
    assert [row["index"] for row in ROWS] == [str(i) for i in range(19)]
    assert {row["index"] for row in ROWS if "public key" in row["comment"]} == OFF_CURVE_ROWS
    assert [len(bytes.fromhex(ROWS[i]["message"])) for i in (15, 16, 17, 18)] == [0, 1, 17, 100]


@pytest.mark.parametrize("row", ROWS, ids=[row["index"] for row in ROWS])
def test_bip340_vector(row: dict[str, str]) -> None:
    pubkey, message = row["public key"], bytes.fromhex(row["message"])
    signature = bytes.fromhex(row["signature"])
    expected = row["verification result"] == "TRUE"
    assert nostr.verify(pubkey, message, signature) is expected
    assert nostr.verify(pubkey.lower(), message, signature) is expected
    assert nostr.parse_signature(row["signature"]) == signature
    if row["index"] in OFF_CURVE_ROWS:
        assert code_of(nostr.parse_pubkey, pubkey) == "invalid_pubkey"
    else:
        assert nostr.parse_pubkey(pubkey) == pubkey.lower()
    if row["secret key"]:
        secret = bytes.fromhex(row["secret key"])
        assert nostr.sign(secret, message, bytes.fromhex(row["aux_rand"])) == signature
        assert nostr.pubkey_of(secret) == pubkey.lower()


@pytest.mark.parametrize(
    ("pubkey", "message", "signature"),
    [
        ("zz" * 32, b"m", bytes(64)),
        ("ab" * 31, b"m", bytes(64)),
        ("ab" * 33, b"m", bytes(64)),
        ("02" + PUB_A, b"m", bytes(64)),  # compressed SEC1 form, not x-only
        (PUB_A[:30] + " " + PUB_A[31:], b"m", bytes(64)),  # bytes.fromhex would skip the space
        ("\u0661" * 64, b"m", bytes(64)),  # ARABIC-INDIC DIGIT ONE: a digit, not hex
        (PUB_A, b"m", bytes(63)),
        (PUB_A, b"m", bytes(65)),
        (None, b"m", bytes(64)),
        (PUB_A, "m", bytes(64)),
        (PUB_A, b"m", "00" * 64),
    ],
)
def test_verify_returns_false_on_malformed_input(pubkey: Any, message: Any, signature: Any) -> None:
    assert nostr.verify(pubkey, message, signature) is False


def test_verify_refuses_a_valid_signature_with_extra_bytes() -> None:
    sig = nostr.sign(SECRET_A, b"m", AUX)
    assert nostr.verify(PUB_A, b"m", sig)
    assert not nostr.verify(PUB_A, b"m", sig + b"\x00")
    assert not nostr.verify(PUB_A, b"m" + b"\x00", sig)
    assert not nostr.verify(PUB_A, b"", sig)


def test_parse_pubkey_and_signature_formats() -> None:
    assert nostr.parse_pubkey(PUB_A.upper()) == PUB_A
    for bad in ["", PUB_A[:-1], PUB_A + "0", " " + PUB_A[1:], "g" + PUB_A[1:], "02" + PUB_A, 5]:
        assert code_of(nostr.parse_pubkey, bad) == "invalid_pubkey"
    sig = nostr.sign(SECRET_A, b"x", AUX)
    assert nostr.parse_signature(sig.hex().upper()) == sig
    for bad_sig in [
        "",
        sig.hex()[:-2],
        sig.hex() + "00",
        "x" * 128,
        sig.hex()[:63] + " " + sig.hex()[64:],
        None,
    ]:
        assert code_of(nostr.parse_signature, bad_sig) == "invalid_signature"


def test_sign_refuses_bad_secrets_and_aux() -> None:
    for secret in [bytes(32), N.to_bytes(32, "big"), (N + 1).to_bytes(32, "big"), b"\x01" * 31, b"\x01" * 33]:
        with pytest.raises(ValueError, match="secret key"):
            nostr.sign(secret, b"m", AUX)
        with pytest.raises(ValueError, match="secret key"):
            nostr.pubkey_of(secret)
    with pytest.raises(ValueError, match="aux_rand"):
        nostr.sign(SECRET_A, b"m", bytes(31))
    assert nostr.verify(
        nostr.pubkey_of((N - 1).to_bytes(32, "big")), b"", nostr.sign((N - 1).to_bytes(32, "big"), b"")
    )


def test_sign_without_aux_is_randomised_and_valid() -> None:
    first, second = nostr.sign(SECRET_A, b"hello"), nostr.sign(SECRET_A, b"hello")
    assert first != second
    assert nostr.verify(PUB_A, b"hello", first) and nostr.verify(PUB_A, b"hello", second)
    assert nostr.sign(SECRET_A, b"hello", AUX) == nostr.sign(SECRET_A, b"hello", AUX)


@pytest.mark.parametrize(
    ("tag", "data"), [("BIP0340/challenge", b""), ("boltgate/x", b"\x00" * 77), ("é", b"abc")]
)
def test_tagged_hash_matches_libsecp256k1(tag: str, data: bytes) -> None:
    out = ffi.new("unsigned char[32]")
    tag_bytes = tag.encode()
    assert (
        lib.secp256k1_tagged_sha256(GLOBAL_CONTEXT.ctx, out, tag_bytes, len(tag_bytes), data, len(data)) == 1
    )
    assert nostr.tagged_hash(tag, data) == bytes(ffi.buffer(out))


@settings(max_examples=40, deadline=None)
@given(
    secret_int=st.integers(min_value=1, max_value=N - 1),
    message=st.binary(max_size=200),
    aux=st.binary(min_size=32, max_size=32),
)
def test_sign_verify_property(secret_int: int, message: bytes, aux: bytes) -> None:
    secret = secret_int.to_bytes(32, "big")
    pubkey = nostr.pubkey_of(secret)
    signature = nostr.sign(secret, message, aux)
    assert nostr.verify(pubkey, message, signature)
    for bit in range(512):
        flipped = bytearray(signature)
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert not nostr.verify(pubkey, message, bytes(flipped))


# --- challenge -------------------------------------------------------------------------------------


def test_challenge_message_is_the_documented_tagged_hash() -> None:
    challenge = "0f" * 32
    tag = hashlib.sha256(b"boltgate/agent-challenge/v1").digest()
    expected = hashlib.sha256(tag + tag + bytes.fromhex(challenge) + bytes.fromhex(PUB_A)).digest()
    assert nostr.challenge_message(challenge, PUB_A) == expected
    assert nostr.challenge_message(challenge.upper(), PUB_A.upper()) == expected
    assert len(expected) == 32


def test_challenge_message_binds_challenge_and_pubkey() -> None:
    challenge = "ab" * 16
    assert nostr.challenge_message(challenge, PUB_A) != nostr.challenge_message(challenge, PUB_B)
    assert nostr.challenge_message(challenge, PUB_A) != nostr.challenge_message("cd" * 16, PUB_A)
    for bad in ["", "abc", "zz", "ab" * 129, " ab"]:
        assert code_of(nostr.challenge_message, bad, PUB_A) == "invalid_challenge"
    assert code_of(nostr.challenge_message, challenge, ROWS[5]["public key"]) == "invalid_pubkey"


def test_agent_challenge_flow() -> None:
    challenge = "5a" * 32
    pubkey = nostr.parse_pubkey(nostr.pubkey_of(SECRET_A))
    signature = nostr.sign(SECRET_A, nostr.challenge_message(challenge, pubkey))
    assert nostr.verify(pubkey, nostr.challenge_message(challenge, pubkey), signature)
    assert not nostr.verify(pubkey, nostr.challenge_message("5b" * 32, pubkey), signature)
    # A's signature cannot be replayed to claim the same challenge for B.
    assert not nostr.verify(PUB_B, nostr.challenge_message(challenge, PUB_B), signature)


# --- NIP-01 events ---------------------------------------------------------------------------------


def test_event_id_of_a_hand_built_serialisation() -> None:
    text = (
        '[0,"'
        + PUB_A
        + '",1700000000,38400,[["d","svc-1"],["t","bitcoin"],["price","21","sats","per-request"]],"Translate text"]'
    )
    tags = [["d", "svc-1"], ["t", "bitcoin"], ["price", "21", "sats", "per-request"]]
    assert nostr.serialize(PUB_A, 1700000000, 38400, tags, "Translate text") == text.encode()
    assert (
        nostr.event_id(PUB_A, 1700000000, 38400, tags, "Translate text")
        == hashlib.sha256(text.encode()).hexdigest()
    )


def test_serialisation_escaping_is_exact() -> None:
    content = 'é🙂 "q" back\\slash\nnl\ttab\rcr\bbs\fff\x01\x1f\x7f\u2028/end'
    expected = (
        b'[0,"' + PUB_A.encode() + b'",1,1,[["t","\\"\\u0001"]],'
        b'"\xc3\xa9\xf0\x9f\x99\x82 \\"q\\" back\\\\slash\\nnl\\ttab\\rcr\\bbs\\fff\\u0001\\u001f\x7f\xe2\x80\xa8/end"]'
    )
    assert nostr.serialize(PUB_A, 1, 1, [["t", '"\x01']], content) == expected


def test_lone_surrogate_is_refused() -> None:
    assert code_of(nostr.serialize, PUB_A, 1, 1, [], "\ud800") == "invalid_event"
    event = nostr.sign_event(SECRET_A, 1, 1, [], "x").to_json()
    assert code_of(nostr.parse_event, {**event, "content": json.loads('"\\ud800"')}) == "invalid_event"


@pytest.mark.parametrize("data", REAL_EVENTS, ids=[e["id"][:8] for e in REAL_EVENTS])
def test_real_events_from_other_software_parse(data: dict[str, Any]) -> None:
    event = nostr.parse_event(data)
    assert event.to_json() == data
    assert (
        nostr.event_id(data["pubkey"], data["created_at"], data["kind"], data["tags"], data["content"])
        == data["id"]
    )


def test_sign_event_round_trip() -> None:
    tags = [["d", "att-1"], ["p", PUB_B, "", "subject"], ["rating", "5"]]
    event = nostr.sign_event(SECRET_A, 1700000000, 38403, tags, 'great "service"\n')
    assert event.pubkey == PUB_A and event.tags == tuple(tuple(t) for t in tags)
    assert event.id == nostr.event_id(PUB_A, 1700000000, 38403, tags, 'great "service"\n')
    wire = json.loads(json.dumps(event.to_json()))
    assert wire["tags"] == tags
    assert nostr.parse_event(wire) == event
    assert nostr.tag_values(event, "p") == [PUB_B]
    assert nostr.tag_values(event, "missing") == []


def test_tag_values_takes_first_value_and_skips_bare_tags() -> None:
    event = nostr.sign_event(SECRET_A, 1, 1, [["t", "a", "x"], ["t"], ["e", "z"], ["t", "b"]], "")
    assert nostr.tag_values(event, "t") == ["a", "b"]


@pytest.mark.parametrize(
    "change",
    [
        {"content": "tampered"},
        {"tags": [["t", "other"]]},
        {"created_at": 1700000001},
        {"kind": 2},
        {"pubkey": PUB_B},
    ],
)
def test_tampered_event_is_an_id_mismatch(change: dict[str, Any]) -> None:
    wire = nostr.sign_event(SECRET_A, 1700000000, 1, [["t", "x"]], "hello").to_json()
    assert code_of(nostr.parse_event, {**wire, **change}) == "event_id_mismatch"


def test_valid_id_with_another_keys_signature() -> None:
    wire = nostr.sign_event(SECRET_A, 1700000000, 1, [], "hello").to_json()
    forged = nostr.sign(SECRET_B, bytes.fromhex(wire["id"]), AUX).hex()
    assert code_of(nostr.parse_event, {**wire, "sig": forged}) == "invalid_signature"
    assert code_of(nostr.parse_event, {**wire, "sig": "00" * 64}) == "invalid_signature"


def _bad(**change: Any) -> dict[str, Any]:
    return {**nostr.sign_event(SECRET_A, 1700000000, 1, [["t", "x"]], "hi").to_json(), **change}


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (_bad(created_at="1"), "invalid_event"),
        (_bad(created_at=True), "invalid_event"),
        (_bad(created_at=1700000000.0), "invalid_event"),
        (_bad(created_at=-1), "invalid_event"),
        (_bad(created_at=2**32), "invalid_event"),
        (_bad(kind=-1), "invalid_event"),
        (_bad(kind=65536), "invalid_event"),
        (_bad(kind=False), "invalid_event"),
        (_bad(kind="1"), "invalid_event"),
        (_bad(tags="t"), "invalid_event"),
        (_bad(tags={"t": "x"}), "invalid_event"),
        (_bad(tags=["t", "x"]), "invalid_event"),
        (_bad(tags=[[]]), "invalid_event"),
        (_bad(tags=[["t", 1]]), "invalid_event"),
        (_bad(tags=[["t", None]]), "invalid_event"),
        (_bad(tags=[["t"]] * 2001), "invalid_event"),
        (_bad(tags=[["t"] * 101]), "invalid_event"),
        (_bad(tags=[["t", "x" * 8193]]), "invalid_event"),
        (_bad(content=None), "invalid_event"),
        (_bad(content=1), "invalid_event"),
        (_bad(content="x" * 65537), "invalid_event"),
        (_bad(extra="x"), "invalid_event"),
        ({k: v for k, v in _bad().items() if k != "sig"}, "invalid_event"),
        ([], "invalid_event"),
        ("{}", "invalid_event"),
        (None, "invalid_event"),
        (_bad(id="zz" * 32), "invalid_event"),
        (_bad(id=_bad()["id"].upper()), "invalid_event"),
        (_bad(id=_bad()["id"][:-2]), "invalid_event"),
        (_bad(id=5), "invalid_event"),
        (_bad(pubkey=PUB_A.upper()), "invalid_pubkey"),
        (_bad(pubkey=ROWS[5]["public key"].lower()), "invalid_pubkey"),
        (_bad(pubkey=None), "invalid_pubkey"),
        (_bad(sig=_bad()["sig"].upper()), "invalid_signature"),
        (_bad(sig="ab"), "invalid_signature"),
        (_bad(sig=None), "invalid_signature"),
    ],
)
def test_malformed_events_are_refused(data: Any, code: str) -> None:
    assert code_of(nostr.parse_event, data) == code


def test_limits_are_inclusive() -> None:
    content, tags = "x" * 65536, [["t"] * 100] + [["t", "y" * 8192]] + [["t"]] * 1998
    event = nostr.sign_event(SECRET_A, 2**32 - 1, 65535, tags, content)
    assert nostr.parse_event(event.to_json()) == event
    assert code_of(nostr.sign_event, SECRET_A, 1, 1, [["t"]] * 2001, "") == "invalid_event"


# --- NIP-42 auth events ----------------------------------------------------------------------------

NOW = 1_800_000_000
CHALLENGE = "c0ffee" * 8


def _auth(
    *, kind: int = nostr.AUTH_KIND, tags: list[list[str]] | None = None, created_at: int = NOW
) -> dict[str, Any]:
    if tags is None:
        tags = [["relay", "https://gateway.example"], ["challenge", CHALLENGE]]
    return nostr.sign_event(SECRET_A, created_at, kind, tags, "").to_json()


def test_auth_event_ok() -> None:
    wire = _auth()
    event = nostr.verify_auth_event(wire, challenge=CHALLENGE, pubkey=PUB_A, now=NOW)
    assert event.to_json() == wire and event.kind == 22242
    assert nostr.verify_auth_event(wire, challenge=CHALLENGE, pubkey=PUB_A.upper(), now=NOW + 600) == event
    assert nostr.verify_auth_event(wire, challenge=CHALLENGE, pubkey=PUB_A, now=NOW - 600) == event


@pytest.mark.parametrize(
    ("data", "kwargs", "code"),
    [
        (_auth(kind=27235), {}, "wrong_kind"),
        (_auth(tags=[["relay", "https://gateway.example"]]), {}, "challenge_mismatch"),
        (_auth(tags=[["challenge", "other"]]), {}, "challenge_mismatch"),
        (_auth(tags=[["challenge"]]), {}, "challenge_mismatch"),
        (_auth(), {"challenge": "beef" * 8}, "challenge_mismatch"),
        (_auth(), {"pubkey": PUB_B}, "pubkey_mismatch"),
        (_auth(created_at=NOW - 601), {}, "event_too_old"),
        (_auth(created_at=NOW + 601), {}, "event_too_old"),
        (_auth(created_at=NOW - 61), {"max_skew": 60}, "event_too_old"),
        ({**_auth(), "content": "x"}, {}, "event_id_mismatch"),
    ],
)
def test_auth_event_refused(data: dict[str, Any], kwargs: dict[str, Any], code: str) -> None:
    args: dict[str, Any] = {"challenge": CHALLENGE, "pubkey": PUB_A, "now": NOW, **kwargs}
    assert code_of(nostr.verify_auth_event, data, **args) == code


def test_auth_event_needs_a_server_challenge() -> None:
    with pytest.raises(ValueError, match="challenge"):
        nostr.verify_auth_event(_auth(tags=[["challenge", ""]]), challenge="", pubkey=PUB_A, now=NOW)
