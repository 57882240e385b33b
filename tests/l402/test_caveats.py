"""L402 caveat checks: the vectors' expectations, every rule, narrowing, and the minting helpers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boltgate.l402 import caveats as cv
from boltgate.l402 import macaroon as mac
from boltgate.l402.caveats import Requirement

VECTORS_PATH = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "l402-macaroons.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
ROOT_KEY = bytes.fromhex(VECTORS["L-1"]["root_key"])
EXPIRY = 1767225600  # L-1's service1_valid_until
NOW = 1_700_000_000


def _caveats(name: str) -> tuple[bytes, ...]:
    return mac.decode(VECTORS[name]["b64"]).caveats


def _check(caveats: list[str], **need: Any) -> str | None:
    return cv.check([c.encode() for c in caveats], Requirement(**({"now": NOW} | need)))


# ----------------------------------------------------------------------------------------- vectors


def test_l1_accepts_service1_until_expiry() -> None:
    caveats = _caveats("L-1")
    assert cv.check(caveats, Requirement(now=NOW, service="service1")) is None
    assert cv.check(caveats, Requirement(now=EXPIRY - 1, service="service1")) is None
    assert cv.check(caveats, Requirement(now=EXPIRY - 1, service="service1", capability="add")) is None
    assert cv.check(caveats, Requirement(now=EXPIRY - 1, service="service1", capability="subtract")) is None


def test_l1_rejects_service2() -> None:
    reason = cv.check(_caveats("L-1"), Requirement(now=NOW, service="service2"))
    assert reason == 'caveat services: service "service2" not granted'


def test_l1_rejects_after_expiry() -> None:
    for now in (EXPIRY, EXPIRY + 1, EXPIRY + 10**6):
        assert (
            cv.check(_caveats("L-1"), Requirement(now=now, service="service1"))
            == "caveat service1_valid_until: expired"
        )


def test_l1_rejects_a_capability_it_does_not_grant() -> None:
    reason = cv.check(_caveats("L-1"), Requirement(now=NOW, service="service1", capability="multiply"))
    assert reason == 'caveat service1_capabilities: capability "multiply" not granted'


def test_l1a_stricter_expiry_holds_before_it() -> None:
    caveats = _caveats("L-1a")
    assert mac.signature_valid(mac.decode(VECTORS["L-1a"]["b64"]), ROOT_KEY)
    assert cv.check(caveats, Requirement(now=1767225000 - 1, service="service1")) is None
    assert (
        cv.check(caveats, Requirement(now=1767225000, service="service1"))
        == "caveat service1_valid_until: expired"
    )


def test_l1b_widened_expiry_is_rejected() -> None:
    caveats = _caveats("L-1b")
    assert mac.signature_valid(mac.decode(VECTORS["L-1b"]["b64"]), ROOT_KEY)
    for now in (NOW, 1767225000):
        reason = cv.check(caveats, Requirement(now=now, service="service1"))
        assert reason == "caveat service1_valid_until: later than an earlier service1_valid_until caveat"


def test_l1c_tampered_services_would_refuse_service1() -> None:
    # The signature check already refuses L-1c; its caveats alone would not grant service1 either.
    assert not mac.signature_valid(mac.decode(VECTORS["L-1c"]["b64"]), ROOT_KEY)
    assert cv.check(_caveats("L-1c"), Requirement(now=NOW, service="service1")) is not None
    assert cv.check(_caveats("L-1c"), Requirement(now=NOW, service="service2")) is None


def test_l1d_preimage_caveat_is_skipped() -> None:
    assert _caveats("L-1d")[-1].startswith(b"preimage=")
    assert cv.check(_caveats("L-1d"), Requirement(now=NOW, service="service1", capability="add")) is None


@pytest.mark.parametrize("name", ["A-1", "A-2", "A-4"])
def test_other_vectors_have_no_restrictions(name: str) -> None:
    assert (
        cv.check(
            _caveats(name),
            Requirement(now=NOW, service="boltgate", capability="x", merchant_id="m", resource="r"),
        )
        is None
    )


# ---------------------------------------------------------------------------------------- services


def test_no_caveats_no_restrictions() -> None:
    assert (
        cv.check([], Requirement(now=NOW, service="a", capability="b", merchant_id="c", resource="d")) is None
    )
    assert cv.check((), Requirement(now=NOW)) is None


def test_services_membership() -> None:
    caveats = ["services=a:0,b:1,c:2"]
    for name in ("a", "b", "c"):
        assert _check(caveats, service=name) is None
    assert _check(caveats, service="d") == 'caveat services: service "d" not granted'
    assert _check(caveats, service="a:0") is not None
    assert _check(caveats) is None


def test_services_must_list_the_service_in_every_occurrence_and_narrow() -> None:
    assert _check(["services=a:0,b:0", "services=a:0"], service="a") is None
    assert (
        _check(["services=a:0,b:0", "services=a:0"], service="b")
        == 'caveat services: service "b" not granted'
    )
    # Repeating the same set is allowed (not broader).
    assert _check(["services=a:0", "services=a:0"], service="a") is None
    # Later broader than earlier: refused even for a service both list, and with no service needed.
    broader = ["services=a:0", "services=a:0,b:0"]
    expected = "caveat services: broader than an earlier services caveat"
    assert _check(broader, service="a") == expected
    assert (
        _check(broader, service="b") == 'caveat services: service "b" not granted'
    )  # the first one already refuses
    assert _check(broader) == expected
    assert _check(["services=a:0", "services=b:0"]) == expected
    # Three occurrences: each is compared with the one before it.
    assert _check(["services=a:0,b:0,c:0", "services=a:0,b:0", "services=a:0"], service="a") is None
    assert _check(["services=a:0,b:0,c:0", "services=a:0", "services=a:0,b:0"], service="a") == expected


def test_services_tier_is_parsed_not_compared() -> None:
    assert _check(["services=a:0", "services=a:7"], service="a") is None
    assert _check(["services=a:12345678901234567890"], service="a") is None


@pytest.mark.parametrize(
    "value",
    ["", "a", "a:", ":0", "a:x", "a:-1", "a:+1", "a:1.0", "a:0,", ",a:0", "a:0,,b:0", "a:\u0661", "a: 0"],
)
def test_services_malformed(value: str) -> None:
    assert _check([f"services={value}"], service="a") == "caveat services: malformed value"
    assert _check([f"services={value}"]) == "caveat services: malformed value"


# ------------------------------------------------------------------------------------ capabilities


def test_capabilities_are_checked_for_the_needed_service_only() -> None:
    caveats = ["svc_capabilities=read,list", "other_capabilities=none"]
    assert _check(caveats, service="svc", capability="read") is None
    assert _check(caveats, service="svc", capability="list") is None
    assert (
        _check(caveats, service="svc", capability="write")
        == 'caveat svc_capabilities: capability "write" not granted'
    )
    assert _check(caveats, service="other", capability="none") is None
    assert (
        _check(caveats, service="other", capability="read")
        == 'caveat other_capabilities: capability "read" not granted'
    )
    assert _check(caveats, service="third", capability="anything") is None


def test_capabilities_are_not_checked_without_a_needed_capability() -> None:
    caveats = ["svc_capabilities=read", "svc_capabilities=read,write", "svc_capabilities=a,,b"]
    assert _check(caveats, service="svc") is None
    assert _check(caveats, capability="read") is None  # no service: no <service>_capabilities key applies


def test_capabilities_narrowing() -> None:
    expected = "caveat svc_capabilities: broader than an earlier svc_capabilities caveat"
    assert (
        _check(["svc_capabilities=read,write", "svc_capabilities=read"], service="svc", capability="read")
        is None
    )
    assert (
        _check(["svc_capabilities=read,write", "svc_capabilities=read"], service="svc", capability="write")
        == 'caveat svc_capabilities: capability "write" not granted'
    )
    assert (
        _check(["svc_capabilities=read", "svc_capabilities=read,write"], service="svc", capability="read")
        == expected
    )


def test_empty_capabilities_grant_nothing() -> None:
    assert (
        _check(["svc_capabilities="], service="svc", capability="read")
        == 'caveat svc_capabilities: capability "read" not granted'
    )
    assert _check(["svc_capabilities="], service="svc") is None


@pytest.mark.parametrize("value", ["a,", ",a", "a,,b", ","])
def test_capabilities_malformed(value: str) -> None:
    assert (
        _check([f"svc_capabilities={value}"], service="svc", capability="a")
        == "caveat svc_capabilities: malformed value"
    )


# -------------------------------------------------------------------------------------- valid_until


def test_service_valid_until() -> None:
    caveats = [f"svc_valid_until={NOW + 10}"]
    assert _check(caveats, service="svc", now=NOW + 9) is None
    assert _check(caveats, service="svc", now=NOW + 10) == "caveat svc_valid_until: expired"
    # Another service's expiry does not apply; without a service no <service>_valid_until applies.
    assert _check(caveats, service="other", now=NOW + 100) is None
    assert _check(caveats, now=NOW + 100) is None


def test_plain_valid_until_applies_to_everything() -> None:
    caveats = [f"valid_until={NOW + 10}"]
    assert _check(caveats, now=NOW) is None
    assert _check(caveats, service="svc", now=NOW + 9) is None
    assert _check(caveats, now=NOW + 10) == "caveat valid_until: expired"
    assert _check(caveats, service="svc", now=NOW + 11) == "caveat valid_until: expired"


def test_valid_until_kinds_are_independent() -> None:
    caveats = [f"valid_until={NOW + 100}", f"svc_valid_until={NOW + 10}", f"valid_until={NOW + 50}"]
    assert _check(caveats, service="svc", now=NOW + 9) is None
    assert _check(caveats, service="svc", now=NOW + 10) == "caveat svc_valid_until: expired"
    assert _check(caveats, service="other", now=NOW + 49) is None
    assert _check(caveats, service="other", now=NOW + 50) == "caveat valid_until: expired"


def test_valid_until_narrowing() -> None:
    assert _check([f"valid_until={NOW + 10}", f"valid_until={NOW + 10}"]) is None
    assert _check([f"valid_until={NOW + 10}", f"valid_until={NOW + 5}"], now=NOW + 4) is None
    assert (
        _check([f"valid_until={NOW + 10}", f"valid_until={NOW + 5}"], now=NOW + 5)
        == "caveat valid_until: expired"
    )
    assert (
        _check([f"valid_until={NOW + 10}", f"valid_until={NOW + 11}"])
        == "caveat valid_until: later than an earlier valid_until caveat"
    )
    # The last one decides expiry; an already-expired earlier one is narrowed further, so still expired.
    assert _check([f"valid_until={NOW - 10}", f"valid_until={NOW - 20}"]) == "caveat valid_until: expired"


@pytest.mark.parametrize("value", ["", "abc", "-5", "+5", " 5", "5 ", "1_000", "1.5", "\u0665", "0x10"])
def test_valid_until_malformed(value: str) -> None:
    assert _check([f"valid_until={value}"]) == "caveat valid_until: malformed value"
    assert _check([f"svc_valid_until={value}"], service="svc") == "caveat svc_valid_until: malformed value"


# ------------------------------------------------------------------------------- merchant, resources


def test_merchant() -> None:
    assert _check(["merchant=m1"], merchant_id="m1") is None
    assert _check(["merchant=m1"], merchant_id="m2") == 'caveat merchant: merchant "m2" not granted'
    assert _check(["merchant=m1", "merchant=m1"], merchant_id="m1") is None
    assert (
        _check(["merchant=m1", "merchant=m2"], merchant_id="m1")
        == 'caveat merchant: merchant "m1" not granted'
    )
    assert (
        _check(["merchant=m1", "merchant=m2"], merchant_id="m2")
        == 'caveat merchant: merchant "m2" not granted'
    )
    assert _check(["merchant=m1"]) is None
    assert _check(["merchant=a=b"], merchant_id="a=b") is None  # split on the first "=" only


def test_resources_membership() -> None:
    caveats = ["resources=premium-data,/api/v1/report"]
    assert _check(caveats, resource="premium-data") is None
    assert _check(caveats, resource="/api/v1/report") is None
    assert (
        _check(caveats, resource="/api/v1/other") == 'caveat resources: resource "/api/v1/other" not granted'
    )
    assert _check(caveats, resource="premium") is not None
    assert _check(caveats) is None
    assert _check(["resources="], resource="x") == 'caveat resources: resource "x" not granted'


def test_resources_narrowing() -> None:
    expected = "caveat resources: broader than an earlier resources caveat"
    assert _check(["resources=a,b", "resources=a"], resource="a") is None
    assert (
        _check(["resources=a,b", "resources=a"], resource="b") == 'caveat resources: resource "b" not granted'
    )
    assert _check(["resources=a", "resources=a,b"], resource="a") == expected
    assert _check(["resources=a", "resources=a,b"]) == expected


@pytest.mark.parametrize("value", ["a,", ",", "a,,b"])
def test_resources_malformed(value: str) -> None:
    assert _check([f"resources={value}"], resource="a") == "caveat resources: malformed value"


# ------------------------------------------------------------------------------- unknown, malformed


def test_unknown_keys_are_skipped() -> None:
    caveats = [
        "preimage=" + "00" * 32,
        "foo=bar",
        "=value",
        "services_extra=x",
        "other_capabilities=",
        "other_valid_until=1",
        "svc_valid_until_x=1",
        "Services=nothing:0",
        "resources2=none",
        "svc_capabilities_x=",
    ]
    assert _check(caveats, service="svc", capability="c", merchant_id="m", resource="r") is None


def test_unknown_values_may_be_anything() -> None:
    caveats = ["note=ünïcödé, with = signs and , commas", "x=", "y=,,,"]
    assert _check(caveats, service="svc", capability="c", merchant_id="m", resource="r") is None


@pytest.mark.parametrize("raw", [b"", b"noequals", b"services", b"\xff=1", b"valid_until\xff=1", b"a=\xff"])
def test_malformed_caveats_fail(raw: bytes) -> None:
    assert cv.check([raw], Requirement(now=NOW)) == "malformed caveat"
    assert cv.check([b"services=a:0", raw], Requirement(now=NOW, service="a")) == "malformed caveat"


def test_first_failure_wins() -> None:
    caveats = [b"services=a:0", b"garbage", b"merchant=x"]
    assert cv.check(caveats, Requirement(now=NOW, service="b")) == 'caveat services: service "b" not granted'
    assert cv.check(caveats, Requirement(now=NOW, service="a")) == "malformed caveat"


@given(st.lists(st.binary(max_size=40), max_size=6), st.sampled_from([None, "svc"]), st.integers(0, 2**40))
def test_check_never_raises(caveats: list[bytes], service: str | None, now: int) -> None:
    result = cv.check(
        caveats, Requirement(now=now, service=service, capability="c", merchant_id="m", resource="r")
    )
    assert result is None or (isinstance(result, str) and result)


# ------------------------------------------------------------------------------------------ helpers


def test_helpers_write_what_check_reads() -> None:
    assert cv.services_caveat("a", "b") == "services=a:0,b:0"
    assert cv.services_caveat("boltgate", tier=2) == "services=boltgate:2"
    assert cv.capabilities_caveat("boltgate", ["premium-data", "x"]) == "boltgate_capabilities=premium-data,x"
    assert cv.capabilities_caveat("boltgate", []) == "boltgate_capabilities="
    assert cv.valid_until_caveat("boltgate", 123) == "boltgate_valid_until=123"
    assert cv.merchant_caveat("m_1") == "merchant=m_1"
    assert cv.resources_caveat(["a", "/api/x"]) == "resources=a,/api/x"
    assert cv.resources_caveat(iter(["a"])) == "resources=a"
    with_query = cv.resources_caveat(["https://api.example/r?id=42&x=y"])
    assert _check([with_query], resource="https://api.example/r?id=42&x=y") is None
    assert _check([with_query], resource="https://api.example/r?id=43&x=y") is not None
    caveats = [
        cv.services_caveat("boltgate"),
        cv.capabilities_caveat("boltgate", ["premium-data"]),
        cv.valid_until_caveat("boltgate", NOW + 60),
        cv.merchant_caveat("m_1"),
        cv.resources_caveat(["premium-data", "/api/x"]),
    ]
    need = Requirement(
        now=NOW, service="boltgate", capability="premium-data", merchant_id="m_1", resource="/api/x"
    )
    assert (
        _check(
            caveats,
            **{k: getattr(need, k) for k in ("now", "service", "capability", "merchant_id", "resource")},
        )
        is None
    )
    assert _check(caveats, service="boltgate", now=NOW + 60) == "caveat boltgate_valid_until: expired"


@pytest.mark.parametrize(
    "call",
    [
        lambda: cv.services_caveat(),
        lambda: cv.services_caveat(""),
        lambda: cv.services_caveat("a,b"),
        lambda: cv.services_caveat("a:b"),
        lambda: cv.services_caveat("a=b"),
        lambda: cv.services_caveat("a", tier=-1),
        lambda: cv.capabilities_caveat("svc", ["a,b"]),
        lambda: cv.capabilities_caveat("svc", [""]),
        lambda: cv.capabilities_caveat("s=v", ["a"]),
        lambda: cv.capabilities_caveat("", ["a"]),
        lambda: cv.valid_until_caveat("svc", -1),
        lambda: cv.valid_until_caveat("s=v", 1),
        lambda: cv.merchant_caveat(""),
        lambda: cv.resources_caveat(["a,b"]),
        lambda: cv.resources_caveat(["a", ""]),
    ],
)
def test_helpers_refuse(call: Any) -> None:
    with pytest.raises(ValueError, match=r"must|required"):
        call()


# -------------------------------------------------------------------------------------- attenuation


def test_holder_narrowing_keeps_the_signature_and_restricts() -> None:
    identifier = mac.encode_identifier(bytes(range(32)), bytes(32))
    minted = mac.mint(
        ROOT_KEY,
        identifier,
        "boltgate",
        [
            cv.services_caveat("boltgate", "other"),
            cv.resources_caveat(["a", "b"]),
            cv.valid_until_caveat("boltgate", NOW + 100),
        ],
    )
    narrowed = mac.attenuate(
        mac.attenuate(minted, cv.resources_caveat(["a"])), cv.services_caveat("boltgate")
    )
    narrowed = mac.attenuate(narrowed, cv.valid_until_caveat("boltgate", NOW + 10))
    assert mac.signature_valid(narrowed, ROOT_KEY)
    for resource in ("a", "b"):
        assert cv.check(minted.caveats, Requirement(now=NOW, service="boltgate", resource=resource)) is None
    assert cv.check(minted.caveats, Requirement(now=NOW, service="other", resource="a")) is None
    assert cv.check(narrowed.caveats, Requirement(now=NOW, service="boltgate", resource="a")) is None
    assert (
        cv.check(narrowed.caveats, Requirement(now=NOW, service="boltgate", resource="b"))
        == 'caveat resources: resource "b" not granted'
    )
    assert (
        cv.check(narrowed.caveats, Requirement(now=NOW, service="other", resource="a"))
        == 'caveat services: service "other" not granted'
    )
    assert (
        cv.check(narrowed.caveats, Requirement(now=NOW + 10, service="boltgate", resource="a"))
        == "caveat boltgate_valid_until: expired"
    )
    assert cv.check(minted.caveats, Requirement(now=NOW + 10, service="boltgate", resource="a")) is None
    # Attenuating to something broader verifies cryptographically but the caveat check refuses it.
    widened = mac.attenuate(narrowed, cv.resources_caveat(["a", "b"]))
    assert mac.signature_valid(widened, ROOT_KEY)
    assert (
        cv.check(widened.caveats, Requirement(now=NOW, service="boltgate", resource="a"))
        == "caveat resources: broader than an earlier resources caveat"
    )
