"""The Payment scheme codec (boltgate.l402.mpp): Aperture's cross-implementation vectors, the
challenge -> credential -> verification round trip, tampering, expiry, malformed credentials,
the legacy profile, receipts, and parsers that never crash on random input.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from boltgate.l402 import mpp
from boltgate.l402.mpp import Challenge, Credential, CredentialError, LegacyCredential

VECTORS_PATH = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "mpp-aperture-vectors.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
VECTOR_KEY = bytes.fromhex(VECTORS["hmacSecretHex"])

KEY = b"k" * 32
NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
PREIMAGE = bytes(range(32)).hex()
PAYMENT_HASH = hashlib.sha256(bytes.fromhex(PREIMAGE)).hexdigest()
INVOICE = "lnbc210n1pexampleinvoice"


def ids(section: str) -> list[str]:
    return [vector["name"] for vector in VECTORS[section]]


def make_challenge(**overrides: Any) -> Challenge:
    args: dict[str, Any] = {
        "realm": "api.example.com",
        "amount_sats": 21,
        "invoice": INVOICE,
        "payment_hash": PAYMENT_HASH,
        "network": "mainnet",
        "expires": NOW + timedelta(minutes=15),
    }
    args.update(overrides)
    return mpp.new_challenge(KEY, **args)


def credential_header(
    challenge: dict[str, Any], preimage: Any = PREIMAGE, *, pad: bool = False, **extra: Any
) -> str:
    """What a client sends: compact JSON, base64url without padding (unless ``pad``)."""
    body = {"challenge": challenge, "payload": {"preimage": preimage}, **extra}
    token = mpp.b64url_encode(json.dumps(body, separators=(",", ":")).encode())
    if pad:
        token += "=" * (-len(token) % 4)
    return f"Payment {token}"


def raw_header(body: bytes | str) -> str:
    data = body.encode() if isinstance(body, str) else body
    return "Payment " + mpp.b64url_encode(data)


def code_of(call: Any, *args: Any) -> str:
    with pytest.raises(CredentialError) as info:
        call(*args)
    return info.value.code


# -- vectors: canonicalization -----------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS["canonicalization"], ids=ids("canonicalization"))
def test_vector_canonicalization(vector: dict[str, Any]) -> None:
    if vector.get("error"):
        with pytest.raises(ValueError, match="Expecting value"):
            mpp.canonicalize(vector["input"])
        return
    assert mpp.canonicalize(vector["input"]) == vector["canonical"].encode("utf-8")
    # canonical_json on the parsed value gives the same bytes, and canonical output is a fixed point
    assert mpp.canonical_json(json.loads(vector["input"])) == vector["canonical"].encode("utf-8")
    assert mpp.canonicalize(vector["canonical"]) == vector["canonical"].encode("utf-8")


def test_canonical_json_refuses_what_json_cannot_carry() -> None:
    with pytest.raises(ValueError, match="not representable"):
        mpp.canonical_json({"x": float("nan")})
    with pytest.raises(ValueError, match="not representable"):
        mpp.canonical_json({"x": float("inf")})
    with pytest.raises(ValueError, match="out of range"):
        mpp.canonical_json({"x": 10**400})
    with pytest.raises(ValueError, match="duplicate JSON member"):
        mpp.canonicalize('{"a":1,"a":2}')  # duplicate members have no canonical form
    with pytest.raises(ValueError, match="NaN is not JSON"):
        mpp.canonicalize('{"a":NaN}')
    assert mpp.canonical_json({"t": True, "n": 2**53 - 1}) == b'{"n":9007199254740991,"t":true}'


# -- vectors: base64url ------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS["base64url"], ids=ids("base64url"))
def test_vector_base64url(vector: dict[str, Any]) -> None:
    if vector.get("error"):
        with pytest.raises(ValueError, match="base64url"):
            mpp.b64url_decode(vector["encoded"])
        return
    data = bytes.fromhex(vector.get("decodedHex", ""))
    assert mpp.b64url_decode(vector["encoded"]) == data
    if vector["canonical"]:
        assert mpp.b64url_encode(data) == vector["encoded"]
    else:
        assert mpp.b64url_encode(data) == vector["encoded"].rstrip("=")


@given(st.binary(max_size=200))
def test_base64url_round_trip_and_optional_padding(data: bytes) -> None:
    encoded = mpp.b64url_encode(data)
    assert "=" not in encoded
    assert mpp.b64url_decode(encoded) == data
    assert mpp.b64url_decode(encoded + "=" * (-len(encoded) % 4)) == data


# -- vectors: challenge headers and lists ------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS["challengeHeaders"], ids=ids("challengeHeaders"))
def test_vector_challenge_header_emit_and_parse(vector: dict[str, Any]) -> None:
    assert mpp.format_challenge_params(vector["params"]) == vector["header"]
    assert mpp.parse_challenges(vector["header"]) == [vector["parsed"]]
    if "expires" in vector["params"]:  # representable as a Challenge (boltgate always sets expires)
        assert mpp.format_challenge(Challenge(**vector["params"])) == vector["header"]


@pytest.mark.parametrize("vector", VECTORS["challengeLists"], ids=ids("challengeLists"))
def test_vector_challenge_lists(vector: dict[str, Any]) -> None:
    if vector.get("error"):
        with pytest.raises(ValueError, match="no complete Payment challenge"):
            mpp.parse_challenges(vector["header"])
        return
    assert mpp.parse_challenges(vector["header"]) == vector["challenges"]


def test_challenge_list_mixed_with_l402_and_token68() -> None:
    challenge = make_challenge()
    header = f'L402 macaroon="AgEEbHNhdA==", invoice="{INVOICE}", Basic abc==, ' + mpp.format_challenge(
        challenge
    )
    assert mpp.parse_challenges(header) == [challenge.params()]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ('Payment id="a, realm="r"', "expected ','"),  # the quote closes early
        ('Payment id="a', "unterminated quoted-string"),
        ('id="a", Payment realm="r"', "before any auth-scheme"),
        ('Payment id="a" realm="r"', "expected ','"),  # missing comma
        ('Payment id="a", realm=', "expected a token or quoted-string"),
        (
            'Payment id="a\r\nX: y", realm="r", method="lightning", intent="charge", request="cQ"',
            "control character",
        ),
        ("Payment(x)", "expected whitespace"),
        ("Payment id=, realm=r", "no complete Payment challenge"),  # "id=" is a token68
        ("", "no complete Payment challenge"),
    ],
)
def test_parse_challenges_rejects_bad_syntax(header: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mpp.parse_challenges(header)


# -- vectors: challenge ids --------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS["challengeIds"], ids=ids("challengeIds"))
def test_vector_challenge_ids(vector: dict[str, Any]) -> None:
    params = vector["params"]
    computed = mpp.challenge_id(
        VECTOR_KEY,
        params["realm"],
        params["method"],
        params["intent"],
        params["request"],
        params.get("expires"),
        params.get("digest"),
        params.get("opaque"),
    )
    assert computed == params["id"]
    raw = hmac.new(VECTOR_KEY, vector["hmacInput"].encode(), hashlib.sha256).digest()
    assert mpp.b64url_encode(raw) == params["id"]


def test_vector_key_is_the_documented_ascii_secret() -> None:
    assert VECTOR_KEY == b"mpp-test-vector-secret"


# -- vectors: credentials ----------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS["credentials"], ids=ids("credentials"))
def test_vector_credentials(vector: dict[str, Any]) -> None:
    if vector.get("error"):
        assert code_of(mpp.decode_credential_json, vector["header"]) == "malformed-credential"
        assert code_of(mpp.parse_credential, vector["header"]) == "malformed-credential"
        return
    expected = json.loads(vector["credentialJson"])
    assert mpp.decode_credential_json(vector["header"]) == expected
    # The vectors' preimages are short placeholders; boltgate wants a real 32-byte preimage.
    assert code_of(mpp.parse_credential, vector["header"]) == "malformed-credential"
    fixed = credential_header(expected["challenge"], PREIMAGE.upper(), source=expected.get("source"))
    parsed = mpp.parse_credential(fixed)
    assert parsed == Credential(
        challenge=expected["challenge"], preimage=PREIMAGE, source=expected.get("source")
    )


# -- vectors: receipts -------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS["receipts"], ids=ids("receipts"))
def test_vector_receipts(vector: dict[str, Any]) -> None:
    expected = json.loads(vector["receiptJson"])  # Python ints are exact: no double rounding
    assert mpp.b64url_encode(vector["receiptJson"].encode()) == vector["header"]
    assert json.loads(mpp.b64url_decode(vector["header"])) == expected
    if list(expected)[:4] == ["status", "method", "timestamp", "reference"]:  # the charge receipts
        stamp = mpp.parse_timestamp(expected["timestamp"])
        assert stamp is not None
        assert mpp.receipt(expected.get("challengeId", ""), expected["reference"], stamp) == vector["header"]


def test_vector_receipt_large_refunds_survive_exactly() -> None:
    by_name = {vector["name"]: vector for vector in VECTORS["receipts"]}
    body = json.loads(mpp.b64url_decode(by_name["refund beyond the exactly representable range"]["header"]))
    assert body["refundSats"] == 9007199254740993
    body = json.loads(mpp.b64url_decode(by_name["largest refund an int64 can hold"]["header"]))
    assert body["refundSats"] == 2**63 - 1


# -- minting challenges ------------------------------------------------------------------------


def test_request_param_is_jcs_base64url() -> None:
    request = mpp.request_param(21, INVOICE, PAYMENT_HASH.upper(), "mainnet")
    details = f'{{"invoice":"{INVOICE}","network":"mainnet","paymentHash":"{PAYMENT_HASH}"}}'
    expected = '{"amount":"21","currency":"sat","methodDetails":' + details + "}"
    assert mpp.b64url_decode(request) == expected.encode()
    assert "=" not in request
    assert mpp.decode_request(request) == json.loads(expected)
    parsed = mpp.parse_charge_request(request)
    assert parsed == mpp.ChargeRequest(21, "sat", INVOICE, PAYMENT_HASH, "mainnet")


@pytest.mark.parametrize(
    ("amount", "invoice", "payment_hash", "network"),
    [
        (0, INVOICE, PAYMENT_HASH, "mainnet"),
        (-1, INVOICE, PAYMENT_HASH, "mainnet"),
        (True, INVOICE, PAYMENT_HASH, "mainnet"),
        (21, "", PAYMENT_HASH, "mainnet"),
        (21, INVOICE, PAYMENT_HASH[:-1], "mainnet"),
        (21, INVOICE, "zz" * 32, "mainnet"),
        (21, INVOICE, PAYMENT_HASH, ""),
    ],
)
def test_request_param_refuses_bad_inputs(amount: Any, invoice: str, payment_hash: str, network: str) -> None:
    with pytest.raises(ValueError, match=r"amount_sats|invoice|payment_hash|network"):
        mpp.request_param(amount, invoice, payment_hash, network)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"amount":"0","currency":"sat","methodDetails":{"invoice":"x"}}', "positive"),
        ('{"amount":"1.5","currency":"sat","methodDetails":{"invoice":"x"}}', "whole number"),
        ('{"amount":"21","currency":"BTC","methodDetails":{"invoice":"x"}}', "currency"),
        ('{"amount":"21","currency":"sat"}', "methodDetails missing"),
        ('{"amount":"21","currency":"sat","methodDetails":{"invoice":""}}', "invoice missing"),
        ('{"amount":"21","currency":"sat","methodDetails":{"invoice":"x","paymentHash":1}}', "paymentHash"),
        ('{"amount":true,"currency":"sat","methodDetails":{"invoice":"x"}}', "whole number"),
    ],
)
def test_parse_charge_request_refuses_non_charges(body: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mpp.parse_charge_request(mpp.b64url_encode(body.encode()))


def test_parse_charge_request_accepts_numeric_amount_and_missing_optionals() -> None:
    request = mpp.b64url_encode(b'{"amount":5,"currency":"sat","methodDetails":{"invoice":"lnbc50n1x"}}')
    assert mpp.parse_charge_request(request) == mpp.ChargeRequest(5, "sat", "lnbc50n1x", None, None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Expecting value"),
        ("!!", "base64url"),
        ("W10", "not a JSON object"),  # []
        ("InN0ciI", "not a JSON object"),  # "str"
        ("bnVsbA", "not a JSON object"),  # null
        ("e30==", "base64url"),
    ],
)
def test_decode_request_garbage(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mpp.decode_request(text)


def test_new_challenge_fields_and_id() -> None:
    expires = datetime(2026, 11, 23, 13, 30, 5, 987654, tzinfo=timezone(timedelta(hours=1)))
    challenge = make_challenge(expires=expires, opaque="eyJvcmRlcklkIjoiMTIzIn0", description="Weather")
    assert challenge.expires == "2026-11-23T12:30:05Z"  # UTC, Z, fraction dropped
    assert (challenge.method, challenge.intent) == ("lightning", "charge")
    assert challenge.request == mpp.request_param(21, INVOICE, PAYMENT_HASH, "mainnet")
    assert challenge.digest is None
    assert challenge.id == mpp.challenge_id(
        KEY,
        "api.example.com",
        "lightning",
        "charge",
        challenge.request,
        challenge.expires,
        None,
        challenge.opaque,
    )
    assert list(challenge.params()) == [
        "id",
        "realm",
        "method",
        "intent",
        "request",
        "expires",
        "description",
        "opaque",
    ]
    assert list(make_challenge().params()) == ["id", "realm", "method", "intent", "request", "expires"]


def test_format_challenge_exact_bytes() -> None:
    challenge = make_challenge(description="Forecast")
    assert mpp.format_challenge(challenge) == (
        f'Payment id="{challenge.id}", realm="api.example.com", method="lightning", intent="charge", '
        f'request="{challenge.request}", expires="2026-11-23T12:15:00Z", description="Forecast"'
    )


@pytest.mark.parametrize("realm", ["", "a|b", 'a"b', "a\\b", "a\nb", "caf\u00e9", "a\x7fb"])
def test_new_challenge_refuses_unsafe_realm(realm: str) -> None:
    with pytest.raises(ValueError, match="realm must be non-empty printable ASCII"):
        make_challenge(realm=realm)


@pytest.mark.parametrize("opaque", ["", "a|b", 'a"b', "a\\b", "a\r\nb"])
def test_new_challenge_refuses_unsafe_opaque(opaque: str) -> None:
    with pytest.raises(ValueError, match="opaque must be non-empty printable ASCII"):
        make_challenge(opaque=opaque)


def test_new_challenge_refuses_naive_expiry() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_challenge(expires=datetime(2026, 11, 23, 12, 15))


def test_description_is_cleaned_for_every_client() -> None:
    challenge = make_challenge(description='say "hi"\r\nX-Injected: 1\tok caf\u00e9')
    assert challenge.description == "say 'hi'X-Injected: 1\tok caf\u00e9"
    header = mpp.format_challenge(challenge)
    assert "\r" not in header and "\n" not in header


def test_format_drops_control_characters_even_from_hand_built_challenges() -> None:
    challenge = Challenge(
        "i", "r", "lightning", "charge", "cQ", "2026-01-01T00:00:00Z", description="a\r\nb\x00c"
    )
    header = mpp.format_challenge(challenge)
    assert header.endswith('description="abc"')
    with pytest.raises(ValueError, match="not a token"):
        mpp.format_challenge_params({"bad name": "x"})


# -- the round trip ----------------------------------------------------------------------------


def test_round_trip_challenge_to_verified_credential() -> None:
    challenge = make_challenge(description="Weather report", opaque="eyJvcmRlcklkIjoiMTIzIn0")
    [echo] = mpp.parse_challenges(mpp.format_challenge(challenge))
    credential = mpp.parse_credential(credential_header(echo))
    assert isinstance(credential, Credential)
    assert credential.preimage == PREIMAGE
    assert credential.challenge == challenge.params()
    assert mpp.verify_echo(KEY, credential.challenge, NOW) == challenge
    assert hashlib.sha256(bytes.fromhex(credential.preimage)).hexdigest() == (
        mpp.parse_charge_request(challenge.request).payment_hash
    )


@pytest.mark.parametrize(
    "order",
    [
        ["id", "realm", "method", "intent", "request", "expires", "digest", "opaque", "description"],  # MCP
        [
            "id",
            "realm",
            "method",
            "intent",
            "request",
            "expires",
            "digest",
            "description",
            "opaque",
        ],  # l402_requests
        ["opaque", "description", "expires", "request", "intent", "method", "realm", "id"],
    ],
)
def test_key_order_in_credential_json_does_not_matter(order: list[str]) -> None:
    challenge = make_challenge(description="d", opaque="o")
    params = challenge.params()
    echo = {name: params[name] for name in order if name in params}
    body = json.dumps({"payload": {"preimage": PREIMAGE}, "challenge": echo})  # payload first, spaces
    credential = mpp.parse_credential(raw_header(body))
    assert isinstance(credential, Credential)
    assert mpp.verify_echo(KEY, credential.challenge, NOW) == challenge


def test_padding_is_optional_in_credentials() -> None:
    challenge = make_challenge()
    for description in ("", "x", "xy", "xyz"):  # vary the length so every padding width occurs
        echo = {**challenge.params(), "description": description} if description else challenge.params()
        padded = mpp.parse_credential(credential_header(echo, pad=True))
        unpadded = mpp.parse_credential(credential_header(echo))
        assert padded == unpadded


def test_scheme_is_case_insensitive_and_whitespace_tolerated() -> None:
    header = credential_header(make_challenge().params())
    token = header.split(" ", 1)[1]
    for value in (f"payment {token}", f"PAYMENT\t{token}", f"  Payment   {token}  "):
        assert isinstance(mpp.parse_credential(value), Credential)


# -- tampering and expiry ----------------------------------------------------------------------


def tampered_request() -> str:
    body = mpp.decode_request(make_challenge().request)
    body["amount"] = "1"
    return mpp.b64url_encode(mpp.canonical_json(body))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("request", "tampered"),  # replaced by tampered_request() below
        ("id", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ("id", "not-even-the-right-length"),
        ("id", "caf\u00e9"),
        ("expires", "2026-11-24T12:15:00Z"),
        ("realm", "evil.example.com"),
        ("opaque", "eyJvcmRlcklkIjoiOTk5In0"),
        ("digest", "sha-256=:X48E9q:"),
        ("method", "LIGHTNING"),
        ("intent", "session"),
    ],
)
def test_tampered_covered_field_is_invalid_challenge(field: str, value: str) -> None:
    challenge = make_challenge(opaque="eyJvcmRlcklkIjoiMTIzIn0")
    echo = challenge.params()
    echo[field] = tampered_request() if value == "tampered" else value
    credential = mpp.parse_credential(credential_header(echo))
    assert isinstance(credential, Credential)
    assert code_of(mpp.verify_echo, KEY, credential.challenge, NOW) == "invalid-challenge"


def test_removing_a_covered_optional_field_is_invalid_challenge() -> None:
    echo = make_challenge(opaque="o").params()
    del echo["opaque"]
    assert code_of(mpp.verify_echo, KEY, echo, NOW) == "invalid-challenge"


def test_other_key_is_invalid_challenge() -> None:
    echo = make_challenge().params()
    assert code_of(mpp.verify_echo, b"another key", echo, NOW) == "invalid-challenge"


def test_description_is_not_covered() -> None:
    challenge = make_challenge(description="Weather report")
    assert make_challenge(description="Something else").id == challenge.id
    assert make_challenge().id == challenge.id
    echo = {**challenge.params(), "description": "edited by the client"}
    assert mpp.verify_echo(KEY, echo, NOW).description == "edited by the client"
    del echo["description"]
    assert mpp.verify_echo(KEY, echo, NOW).description is None


def test_expired_challenge_is_payment_expired() -> None:
    challenge = make_challenge(expires=NOW + timedelta(minutes=15))
    echo = challenge.params()
    assert mpp.verify_echo(KEY, echo, NOW + timedelta(minutes=14, seconds=59)) == challenge
    assert code_of(mpp.verify_echo, KEY, echo, NOW + timedelta(minutes=15)) == "payment-expired"
    assert code_of(mpp.verify_echo, KEY, echo, NOW + timedelta(days=1)) == "payment-expired"


def test_tampered_expiry_is_invalid_not_expired() -> None:
    echo = make_challenge(expires=NOW - timedelta(minutes=1)).params()
    echo["expires"] = "2099-01-01T00:00:00Z"
    assert code_of(mpp.verify_echo, KEY, echo, NOW) == "invalid-challenge"


def test_unparseable_expiry_with_valid_id_is_malformed() -> None:
    echo = {"realm": "r", "method": "lightning", "intent": "charge", "request": "cQ", "expires": "tomorrow"}
    echo["id"] = mpp.challenge_id(KEY, "r", "lightning", "charge", "cQ", "tomorrow")
    assert code_of(mpp.verify_echo, KEY, echo, NOW) == "malformed-credential"


@pytest.mark.parametrize("field", ["id", "realm", "method", "intent", "request", "expires"])
def test_missing_echoed_field_is_malformed(field: str) -> None:
    echo = make_challenge().params()
    del echo[field]
    assert code_of(mpp.verify_echo, KEY, echo, NOW) == "malformed-credential"
    echo[field] = ""
    assert code_of(mpp.verify_echo, KEY, echo, NOW) == "malformed-credential"


def test_verify_echo_other_method_and_bad_values() -> None:
    echo = make_challenge().params()
    assert code_of(mpp.verify_echo, KEY, {**echo, "method": "tempo"}, NOW) == "method-unsupported"
    assert code_of(mpp.verify_echo, KEY, {**echo, "realm": 5}, NOW) == "malformed-credential"
    assert code_of(mpp.verify_echo, KEY, {**echo, "realm": "\ud800"}, NOW) == "malformed-credential"
    with pytest.raises(ValueError, match="timezone-aware"):
        mpp.verify_echo(KEY, echo, datetime(2026, 11, 23, 12, 0))  # naive "now"


# -- malformed credentials ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "Payment",
        "Payment ",
        "Bearer abc123",
        "L402 AgEE:00",
        "Paymentabc",
        "Payment !!!",
        "Payment a+b/",
        "Payment AB",
        "Payment e30===",
        "Payment " + mpp.b64url_encode(b"\xff\xfe"),  # not UTF-8
        raw_header("not json"),
        raw_header("[]"),
        raw_header('"str"'),
        raw_header("{}"),
        raw_header('{"challenge":[],"payload":{"preimage":"00"}}'),
        raw_header(
            '{"challenge":{"id":"i","realm":"r","method":"lightning","intent":"charge","request":"cQ"}}'
        ),
        raw_header(
            '{"challenge":{"id":"i","realm":"r","method":"lightning","intent":"charge","request":"cQ"},"payload":[]}'
        ),
        raw_header(
            '{"challenge":{"id":"i","realm":"r","method":"lightning","intent":"charge","request":"cQ"},"payload":{}}'
        ),
        raw_header("[" * 5000 + "]" * 5000),  # nesting deeper than the JSON parser recurses
        raw_header('{"a":NaN}'),
    ],
)
def test_garbage_credentials_are_malformed(value: str) -> None:
    assert code_of(mpp.parse_credential, value) == "malformed-credential"


def test_wrong_json_shapes_are_malformed() -> None:
    echo = make_challenge().params()
    assert code_of(mpp.parse_credential, credential_header({**echo, "realm": 7})) == "malformed-credential"
    assert (
        code_of(mpp.parse_credential, credential_header({**echo, "opaque": None})) == "malformed-credential"
    )
    assert (
        code_of(mpp.parse_credential, credential_header({**echo, "x": {"y": "z"}})) == "malformed-credential"
    )
    assert code_of(mpp.parse_credential, credential_header(echo, source=5)) == "malformed-credential"
    payload = json.dumps({"preimage": PREIMAGE})
    duplicate = '{"challenge":' + json.dumps(echo) + ',"payload":' + payload + ',"payload":' + payload + "}"
    assert code_of(mpp.parse_credential, raw_header(duplicate)) == "malformed-credential"
    surrogate = json.dumps({"challenge": {**echo, "realm": "\ud800"}, "payload": {"preimage": PREIMAGE}})
    assert code_of(mpp.parse_credential, raw_header(surrogate)) == "malformed-credential"


@pytest.mark.parametrize(
    "preimage",
    [PREIMAGE[:63], PREIMAGE + "0", "g" * 64, "", " " + PREIMAGE[1:], PREIMAGE[:62] + "\n", 12, None, ["00"]],
)
def test_bad_preimages_are_malformed(preimage: Any) -> None:
    header = credential_header(make_challenge().params(), preimage)
    assert code_of(mpp.parse_credential, header) == "malformed-credential"
    if isinstance(preimage, str) and preimage:
        legacy = f'Payment method="lightning", preimage="{preimage.strip()}"'
        assert code_of(mpp.parse_credential, legacy) == "malformed-credential"


def test_upper_case_preimage_is_accepted_and_lowered() -> None:
    credential = mpp.parse_credential(credential_header(make_challenge().params(), PREIMAGE.upper()))
    assert isinstance(credential, Credential)
    assert credential.preimage == PREIMAGE


def test_oversized_credentials_are_malformed_before_decoding() -> None:
    echo = {**make_challenge().params(), "description": "x" * 100_000}
    header = credential_header(echo)
    assert len(header) > 100_000
    assert code_of(mpp.parse_credential, header) == "malformed-credential"
    assert code_of(mpp.decode_credential_json, header) == "malformed-credential"
    legacy = f'Payment method="lightning", preimage="{PREIMAGE}", junk="{"x" * 100_000}"'
    assert code_of(mpp.parse_credential, legacy) == "malformed-credential"
    just_fits = {**make_challenge().params(), "description": "x" * 8_000}
    assert isinstance(mpp.parse_credential(credential_header(just_fits)), Credential)


def test_other_methods_are_unsupported() -> None:
    echo = {**make_challenge().params(), "method": "tempo"}
    assert code_of(mpp.parse_credential, credential_header(echo, {"signature": "0x"})) == "method-unsupported"
    legacy = f'Payment method="stripe", preimage="{PREIMAGE}"'
    assert code_of(mpp.parse_credential, legacy) == "method-unsupported"


def test_source_is_kept() -> None:
    credential = mpp.parse_credential(credential_header(make_challenge().params(), source="did:key:z6Mk"))
    assert isinstance(credential, Credential)
    assert credential.source == "did:key:z6Mk"


# -- legacy credentials ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        f'Payment method="lightning", preimage="{PREIMAGE}"',
        f'payment preimage="{PREIMAGE.upper()}", method="lightning"',
        f"Payment method=lightning, preimage={PREIMAGE}",
        f'PAYMENT Method="Lightning" , PREIMAGE = "{PREIMAGE}", invoice="{INVOICE}"',
        f'Payment method="lightning", preimage="{PREIMAGE}", preimage="{"00" * 32}"',  # first wins
    ],
)
def test_legacy_credentials(value: str) -> None:
    assert mpp.parse_credential(value) == LegacyCredential(preimage=PREIMAGE)


@pytest.mark.parametrize(
    "value",
    [
        'Payment method="lightning"',
        f'Payment preimage="{PREIMAGE}"',
        f'Payment method="lightning", preimage="{PREIMAGE}", Payment method="lightning"',
        f'Payment method="lightning" preimage="{PREIMAGE}"',
        f'Payment method="lightning", preimage="{PREIMAGE}',
    ],
)
def test_bad_legacy_credentials(value: str) -> None:
    assert code_of(mpp.parse_credential, value) == "malformed-credential"


def test_legacy_credential_is_not_a_modern_envelope() -> None:
    legacy = f'Payment method="lightning", preimage="{PREIMAGE}"'
    assert code_of(mpp.decode_credential_json, legacy) == "malformed-credential"


# -- receipts ----------------------------------------------------------------------------------


def test_receipt_shape_and_never_a_preimage() -> None:
    challenge = make_challenge()
    value = mpp.receipt(challenge.id, PAYMENT_HASH.upper(), NOW + timedelta(microseconds=5))
    raw = mpp.b64url_decode(value)
    assert "=" not in value
    assert raw == (
        b'{"status":"success","method":"lightning","timestamp":"2026-11-23T12:00:00Z","reference":"'
        + PAYMENT_HASH.encode()
        + b'","challengeId":"'
        + challenge.id.encode()
        + b'"}'
    )
    assert PREIMAGE not in raw.decode()
    assert PREIMAGE.upper() not in raw.decode()
    assert json.loads(mpp.b64url_decode(mpp.receipt("", PAYMENT_HASH, NOW))) == {
        "status": "success",
        "method": "lightning",
        "timestamp": "2026-11-23T12:00:00Z",
        "reference": PAYMENT_HASH,
    }


def test_receipt_refuses_bad_inputs() -> None:
    with pytest.raises(ValueError, match="must be hex"):
        mpp.receipt("id", "not hex", NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        mpp.receipt("id", PAYMENT_HASH, datetime(2026, 1, 1))


# -- timestamps, errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-23T12:00:00Z", datetime(2026, 11, 23, 12, tzinfo=UTC)),
        ("2026-11-23T12:00:00.123Z", datetime(2026, 11, 23, 12, 0, 0, 123000, tzinfo=UTC)),
        ("2026-11-23T12:00:00.123456Z", datetime(2026, 11, 23, 12, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-23T12:00:00.1234567Z", None),
        ("2026-11-23T12:00:00+00:00", None),
        ("2026-11-23 12:00:00Z", None),
        ("2026-13-01T00:00:00Z", None),
        ("2026-11-23T12:00:00z", None),
        ("\u0662026-11-23T12:00:00Z", None),  # a non-ASCII digit
        ("", None),
    ],
)
def test_parse_timestamp(text: str, expected: datetime | None) -> None:
    assert mpp.parse_timestamp(text) == expected


def test_format_timestamp_pads_and_converts() -> None:
    assert mpp.format_timestamp(datetime(987, 1, 2, 3, 4, 5, tzinfo=UTC)) == "0987-01-02T03:04:05Z"
    eastern = timezone(timedelta(hours=-5))
    assert mpp.format_timestamp(datetime(2026, 12, 31, 22, 0, tzinfo=eastern)) == "2027-01-01T03:00:00Z"


def test_credential_error_and_problem_types() -> None:
    error = CredentialError("invalid-challenge")
    assert isinstance(error, ValueError)
    assert error.code == "invalid-challenge"
    assert error.type_uri == "https://paymentauth.org/problems/invalid-challenge"
    assert CredentialError(code="malformed-credential").code == "malformed-credential"
    assert mpp.problem_type("payment-expired") == mpp.PROBLEM_BASE + "payment-expired"
    assert {
        "payment-required",
        "invalid-preimage",
        "unknown-challenge",
        "expired-invoice",
    } <= mpp.PROBLEM_CODES


# -- properties --------------------------------------------------------------------------------

B64URL_TEXT = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=", max_size=80
)
HEADERISH = st.text(
    alphabet=st.sampled_from(list('Payment=",; \t\\abc-_/+lightningpreimage0f\r\n\x00\u00e9')), max_size=120
)


FRAGMENTS = st.lists(
    st.sampled_from(
        [
            "Payment",
            "payment",
            " ",
            "\t",
            ",",
            "method",
            "preimage",
            "=",
            '"',
            "\\",
            "lightning",
            PREIMAGE,
            "e30",
            "AB",
            "\r\n",
        ]
    ),
    max_size=12,
).map("".join)


@settings(max_examples=400)
@given(
    st.one_of(st.text(max_size=300), HEADERISH, FRAGMENTS, B64URL_TEXT.map(lambda token: "Payment " + token))
)
def test_parse_credential_never_crashes(value: str) -> None:
    code = None
    try:
        result = mpp.parse_credential(value)
    except CredentialError as exc:
        code = exc.code
    else:
        assert isinstance(result, Credential | LegacyCredential)
        assert len(result.preimage) == 64
    assert code in {None, "malformed-credential", "method-unsupported"}


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
ENVELOPES = st.fixed_dictionaries(
    {},
    optional={
        "challenge": st.one_of(
            JSON_VALUES,
            st.dictionaries(
                st.sampled_from(["id", "realm", "method", "intent", "request", "expires", "description"]),
                st.one_of(st.text(max_size=20), st.just("lightning"), JSON_VALUES),
            ),
        ),
        "payload": st.one_of(
            JSON_VALUES, st.fixed_dictionaries({"preimage": st.one_of(st.just(PREIMAGE), JSON_VALUES)})
        ),
        "source": JSON_VALUES,
    },
)


@settings(max_examples=300)
@given(ENVELOPES, st.booleans())
def test_parse_credential_and_verify_never_crash_on_json(body: dict[str, Any], pad: bool) -> None:
    token = mpp.b64url_encode(json.dumps(body).encode())
    if pad:
        token += "=" * (-len(token) % 4)
    try:
        credential = mpp.parse_credential("Payment " + token)
    except CredentialError:
        return
    assert isinstance(credential, Credential)
    with pytest.raises(CredentialError):  # nothing random carries a valid id
        mpp.verify_echo(KEY, credential.challenge, NOW)


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=200), HEADERISH, FRAGMENTS, B64URL_TEXT))
def test_other_parsers_raise_only_value_error(value: str) -> None:
    for parse in (mpp.parse_challenges, mpp.b64url_decode, mpp.decode_request, mpp.parse_charge_request):
        with contextlib.suppress(ValueError):
            parse(value)
    mpp.parse_timestamp(value)


PARAM_VALUE = st.text(
    alphabet=st.characters(blacklist_categories=["Cs", "Cc"], blacklist_characters="\x7f")
    | st.sampled_from(['"', "\\", "\t", ","]),
    min_size=1,
    max_size=30,
)


@given(st.fixed_dictionaries({name: PARAM_VALUE for name in mpp.PARAM_ORDER}))
def test_format_then_parse_is_identity(params: dict[str, str]) -> None:
    assert mpp.parse_challenges(mpp.format_challenge_params(params)) == [params]


@given(JSON_VALUES)
def test_canonical_json_is_a_fixed_point(value: Any) -> None:
    try:
        canonical = mpp.canonical_json(value)
    except ValueError:  # surrogates in generated text, floats beyond the double range, etc.
        return
    assert mpp.canonicalize(canonical) == canonical
