"""The 402 guard over real HTTP: the challenge headers byte by byte, paying through the dev node,
L402 / Payment / legacy credentials, single use, receipts, and every kind of bad credential."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from datetime import UTC, datetime

import pytest

from boltgate.l402 import macaroon, mpp

L402_LINE = re.compile(r'^L402 macaroon="([A-Za-z0-9+/=]+)", invoice="(lnbcrt[0-9a-z]+)"$')


def challenges(response) -> tuple[str, str, str]:
    """(macaroon, invoice, Payment challenge line) of a 402, checking the header layout."""
    assert response.status_code == 402, response.text
    lines = response.headers.get_list("www-authenticate")
    assert len(lines) == 2, lines
    found = L402_LINE.match(lines[0])
    assert found, lines[0]
    assert lines[1].startswith("Payment ")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["error"] == "payment_required" and response.json()["status"] == 402
    return found.group(1), found.group(2), lines[1]


async def pay(client, invoice: str) -> str:
    paid = await client.post("/api/dev/pay", json={"invoice": invoice})
    assert paid.status_code == 200, paid.text
    return paid.json()["preimage"]


def modern_credential(challenge_line: str, preimage: str) -> str:
    (params,) = mpp.parse_challenges(challenge_line)
    body = {"challenge": params, "payload": {"preimage": preimage}}
    return "Payment " + base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")


async def test_402_carries_both_challenges_for_one_invoice(client):
    response = await client.get("/api/l402/premium-data")
    token, invoice, payment_line = challenges(response)
    mac = macaroon.decode(token)
    ident = macaroon.decode_identifier(mac.identifier)
    (params,) = mpp.parse_challenges(payment_line)
    assert params["method"] == "lightning" and params["intent"] == "charge"
    assert list(params)[:6] == ["id", "realm", "method", "intent", "request", "expires"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", params["expires"])
    assert datetime.fromisoformat(params["expires"].replace("Z", "+00:00")) > datetime.now(UTC)
    request = mpp.decode_request(params["request"])
    assert request == {
        "amount": "10",
        "currency": "sat",
        "methodDetails": {"invoice": invoice, "paymentHash": ident.payment_hash.hex(), "network": "regtest"},
    }
    assert response.json()["paymentHash"] == ident.payment_hash.hex()
    assert b"services=boltgate:0" in mac.caveats


async def test_l402_pay_and_retry_then_reuse(client):
    token, invoice, _ = challenges(await client.get("/api/l402/premium-data"))
    preimage = await pay(client, invoice)
    for scheme, shown in (("L402", preimage), ("LSAT", preimage.upper())):
        ok = await client.get(
            "/api/l402/premium-data", headers={"authorization": f"{scheme} {token}:{shown}"}
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["paidWith"] == "L402"
        receipt = json.loads(mpp.b64url_decode(ok.headers["payment-receipt"]))
        assert receipt["reference"] == hashlib.sha256(bytes.fromhex(preimage)).hexdigest()
        assert preimage not in ok.headers["payment-receipt"] and preimage not in json.dumps(receipt)
    # the token opens this route only
    other = await client.get("/l402/test/ping", headers={"authorization": f"L402 {token}:{preimage}"})
    assert other.status_code == 402


async def test_payment_credential_is_single_use(client):
    _, invoice, line = challenges(await client.get("/api/l402/premium-data"))
    preimage = await pay(client, invoice)
    credential = modern_credential(line, preimage)
    first = await client.get("/api/l402/premium-data", headers={"authorization": credential})
    assert first.status_code == 200 and first.json()["paidWith"] == "Payment"
    receipt = json.loads(mpp.b64url_decode(first.headers["payment-receipt"]))
    assert receipt["challengeId"] == mpp.parse_challenges(line)[0]["id"] and receipt["method"] == "lightning"
    replay = await client.get("/api/l402/premium-data", headers={"authorization": credential})
    challenges(replay)  # a fresh 402, never a 401
    assert "already used" in replay.json()["detail"]


async def test_legacy_payment_credential(client):
    _, invoice, _ = challenges(await client.get("/api/l402/premium-data"))
    preimage = await pay(client, invoice)
    legacy = f'Payment method="lightning", preimage="{preimage}"'
    assert (await client.get("/api/l402/premium-data", headers={"authorization": legacy})).status_code == 200
    challenges(await client.get("/api/l402/premium-data", headers={"authorization": legacy}))


async def test_test_ping_offers_the_same_invoice_for_a_minute(client):
    first = challenges(await client.get("/l402/test/ping"))
    second = challenges(await client.get("/l402/test/ping"))
    assert first[1] == second[1] and first[0] == second[0]
    assert "lnbcrt10n1" in first[1]  # 1 sat
    preimage = await pay(client, first[1])
    ok = await client.get("/l402/test/ping", headers={"authorization": f"L402 {first[0]}:{preimage}"})
    assert ok.status_code == 200 and ok.json()["pong"] is True
    third = challenges(await client.get("/l402/test/ping"))
    assert third[1] != first[1]  # a paid offer is not offered again


async def test_unpaid_and_expired_tokens_get_a_fresh_402(client, gateway):
    token, invoice, line = challenges(await client.get("/api/l402/premium-data"))
    unpaid = "0" * 64
    response = await client.get("/api/l402/premium-data", headers={"authorization": f"L402 {token}:{unpaid}"})
    assert "does not match" in challenges(response)[2] or response.status_code == 402
    assert "preimage" in response.json()["detail"]
    # an attenuated token that expired in the past
    preimage = await pay(client, invoice)
    narrowed = macaroon.encode(macaroon.attenuate(macaroon.decode(token), "boltgate_valid_until=1000"))
    expired = await client.get(
        "/api/l402/premium-data", headers={"authorization": f"L402 {narrowed}:{preimage}"}
    )
    challenges(expired)
    assert "valid_until" in expired.json()["detail"]
    # attenuating with an unknown caveat keeps it valid
    extra = macaroon.encode(macaroon.attenuate(macaroon.decode(token), "somebody_else=1"))
    fine = await client.get("/api/l402/premium-data", headers={"authorization": f"L402 {extra}:{preimage}"})
    assert fine.status_code == 200


def _tampered_request(line: str, preimage: str) -> str:
    (params,) = mpp.parse_challenges(line)
    request = mpp.decode_request(params["request"])
    request["amount"] = "1"
    params["request"] = mpp.b64url_encode(mpp.canonical_json(request))
    body = {"challenge": params, "payload": {"preimage": preimage}}
    return "Payment " + mpp.b64url_encode(json.dumps(body).encode())


def _tampered_id(line: str, preimage: str) -> str:
    (params,) = mpp.parse_challenges(line)
    params["id"] = params["id"][:-2] + ("AA" if not params["id"].endswith("AA") else "BB")
    body = {"challenge": params, "payload": {"preimage": preimage}}
    return "Payment " + mpp.b64url_encode(json.dumps(body).encode())


@pytest.mark.parametrize(
    "make",
    [
        lambda token, line, pre: "L402 !!!notbase64!!!:" + pre,
        lambda token, line, pre: f"L402 {token[: len(token) // 2]}:{pre}",  # truncated macaroon
        lambda token, line, pre: f"L402 {token}:{pre[:63]}",
        lambda token, line, pre: f"L402 {token}:{'zz' * 32}",
        lambda token, line, pre: f"L402 {token}",
        lambda token, line, pre: f"L402 {token}:{pre}" + "A" * 100_000,  # 100 KB header
        lambda token, line, pre: "Payment !!!",
        lambda token, line, pre: "Payment " + mpp.b64url_encode(b'{"challenge": 1}'),
        lambda token, line, pre: 'Payment method="lightning", preimage="' + "0" * 64 + '"',
        lambda token, line, pre: 'Payment method="bitcoin", preimage="' + pre + '"',
        _tampered_request,
        _tampered_id,
        lambda token, line, pre: "Bearer abc",
        lambda token, line, pre: "L402 " + base64.b64encode(b"\x02" + b"\xff" * 40).decode() + ":" + pre,
    ],
)
async def test_bad_credentials_get_a_fresh_402_and_unlock_nothing(client, make):
    token, invoice, line = challenges(await client.get("/api/l402/premium-data"))
    preimage = await pay(client, invoice)
    sig = make.__code__.co_argcount
    header = make(token, line, preimage) if sig == 3 else make(line, preimage)
    response = await client.get("/api/l402/premium-data", headers={"authorization": header})
    assert response.status_code in (402, 431, 400), response.text  # 431/400: the server refused the header
    if response.status_code == 402:
        challenges(response)
    # the real credential still works: nothing was spent by the bad ones
    ok = await client.get("/api/l402/premium-data", headers={"authorization": f"L402 {token}:{preimage}"})
    assert ok.status_code == 200


async def test_token_from_another_server_is_refused(client, make_gateway):
    other = await make_gateway(secret_key="another-server-secret-key-of-32-chars!!")
    try:
        import httpx

        async with httpx.AsyncClient(base_url=other.base_url) as http:
            token, invoice, _ = challenges(await http.get("/api/l402/premium-data"))
            preimage = await pay(http, invoice)
            assert (
                await http.get(
                    "/api/l402/premium-data", headers={"authorization": f"L402 {token}:{preimage}"}
                )
            ).status_code == 200
    finally:
        await other.stop()
    # same database, other server key: the root key cannot be opened here. Refused as a server
    # fault the operator must fix (503), not with a new 402 that would make the holder pay again.
    response = await client.get(
        "/api/l402/premium-data", headers={"authorization": f"L402 {token}:{preimage}"}
    )
    assert response.status_code == 503 and response.json()["error"] == "secret_key_mismatch"


async def test_demo_routes_are_free(client):
    for path in ("/api/l402/demo", "/api/l402/pricing", "/api/l402/status"):
        response = await client.get(path)
        assert response.status_code == 200, path
    pricing = (await client.get("/api/l402/pricing")).json()
    assert {"method": "GET", "path": "/l402/test/ping", "priceSats": 1} in pricing["routes"]


async def test_a_verified_token_is_not_admitted_past_its_expiry(client):
    token, invoice, _ = challenges(await client.get("/api/l402/premium-data"))
    preimage = await pay(client, invoice)
    soon = int(datetime.now(UTC).timestamp()) + 2
    short = macaroon.encode(macaroon.attenuate(macaroon.decode(token), f"boltgate_valid_until={soon}"))
    header = {"authorization": f"L402 {short}:{preimage}"}
    assert (await client.get("/api/l402/premium-data", headers=header)).status_code == 200
    assert (await client.get("/api/l402/premium-data", headers=header)).status_code == 200  # cached verdict
    await asyncio.sleep(max(0.0, soon - datetime.now(UTC).timestamp()) + 0.2)
    challenges(await client.get("/api/l402/premium-data", headers=header))  # the cache honours the caveat
