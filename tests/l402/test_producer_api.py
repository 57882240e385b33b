"""The producer API: mint challenges for your own resources, verify tokens, list challenges."""

from __future__ import annotations

import pytest

from boltgate.l402 import macaroon, mpp
from tests.helpers import auth


async def _pay(client, invoice: str) -> str:
    return (await client.post("/api/dev/pay", json={"invoice": invoice})).json()["preimage"]


async def test_mint_verify_and_list(client, merchant):
    merchant_id, key = merchant
    body = {"resource": "https://api.example/v1/report/42", "priceSats": 21, "description": "report 42"}
    created = await client.post("/api/l402/challenges", json=body, headers=auth(key))
    assert created.status_code == 201, created.text
    challenge = created.json()
    assert challenge["resource"] == body["resource"] and challenge["priceSats"] == 21
    assert challenge["invoice"].startswith("lnbcrt210n1")
    mac = macaroon.decode(challenge["macaroon"])
    assert macaroon.decode_identifier(mac.identifier).payment_hash.hex() == challenge["paymentHash"]
    assert f"merchant={merchant_id}".encode() in mac.caveats
    assert challenge["mppChallenge"].startswith('Payment id="')
    (params,) = mpp.parse_challenges(challenge["mppChallenge"])
    assert mpp.decode_request(params["request"])["methodDetails"]["invoice"] == challenge["invoice"]

    again = await client.post("/api/l402/challenges", json=body, headers=auth(key))
    assert again.status_code == 200 and again.json()["invoice"] == challenge["invoice"]  # within 60 s

    unpaid = await client.post(
        "/api/l402/challenges/verify",
        json={"macaroon": challenge["macaroon"], "preimage": "11" * 32},
        headers=auth(key),
    )
    assert unpaid.status_code == 200 and unpaid.json()["valid"] is False and unpaid.json()["error"]

    preimage = await _pay(client, challenge["invoice"])
    for macaroon_given in (challenge["macaroon"], None):  # with the token, or the preimage alone
        verified = await client.post(
            "/api/l402/challenges/verify",
            json={"macaroon": macaroon_given, "preimage": preimage.upper()},
            headers=auth(key),
        )
        assert verified.json() == {
            "valid": True,
            "resource": body["resource"],
            "merchantId": merchant_id,
            "amountSats": 21,
            "paymentHash": challenge["paymentHash"],
        }

    listed = (await client.get("/api/l402/challenges?status=paid", headers=auth(key))).json()
    assert [c["paymentHash"] for c in listed["challenges"]] == [challenge["paymentHash"]]
    assert listed["challenges"][0]["status"] == "paid" and listed["challenges"][0]["paidAt"]
    assert (await client.get("/api/l402/challenges?status=pending", headers=auth(key))).json()["total"] == 0


async def test_tokens_are_per_merchant(client, make_merchant):
    _, key_a = await make_merchant("A")
    _, key_b = await make_merchant("B")
    challenge = (
        await client.post("/api/l402/challenges", json={"resource": "r", "priceSats": 5}, headers=auth(key_a))
    ).json()
    preimage = await _pay(client, challenge["invoice"])
    for body in ({"macaroon": challenge["macaroon"], "preimage": preimage}, {"preimage": preimage}):
        response = await client.post("/api/l402/challenges/verify", json=body, headers=auth(key_b))
        assert response.json()["valid"] is False, body
    assert (await client.get("/api/l402/challenges", headers=auth(key_b))).json()["total"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"resource": "r", "priceSats": 0},
        {"resource": "r", "priceSats": "10"},
        {"resource": "r", "priceSats": 1.5},
        {"resource": "", "priceSats": 1},
        {"resource": "a,b", "priceSats": 1},
        {"resource": "nul\u0000", "priceSats": 1},
        {"priceSats": 1},
        {"resource": "r", "priceSats": 10**12},
    ],
)
async def test_bad_challenge_requests_are_400(client, merchant, body):
    _, key = merchant
    response = await client.post("/api/l402/challenges", json=body, headers=auth(key))
    assert response.status_code == 400 and response.json()["error"] == "validation_error", response.text


@pytest.mark.parametrize(
    "body",
    [
        {"preimage": "xyz"},
        {"preimage": "00" * 31},
        {"macaroon": "!!!", "preimage": "00" * 32},
        {"macaroon": "AgEE", "preimage": "00" * 32},
    ],
)
async def test_verify_says_why(client, merchant, body):
    _, key = merchant
    response = await client.post("/api/l402/challenges/verify", json=body, headers=auth(key))
    assert response.status_code == 200 and response.json()["valid"] is False and response.json()["error"]


async def test_verify_of_unparsable_bodies_is_400(client, merchant):
    _, key = merchant
    for content in (b"{", b"[]", b'{"macaroon": 1}'):
        response = await client.post(
            "/api/l402/challenges/verify",
            content=content,
            headers={**auth(key), "content-type": "application/json"},
        )
        assert response.status_code == 400, content
    assert (
        await client.post("/api/l402/challenges", json={"resource": "r", "priceSats": 1})
    ).status_code == 401


async def test_idempotency_keys_of_any_length(client, merchant):
    _, key = merchant
    body = {"resource": "idem", "priceSats": 2}
    odd = "x" * 100 + "!#$%&'*+-.^_`|~ {}"
    for idem in ("k" * 255, odd):
        headers = {**auth(key), "Idempotency-Key": idem}
        first = await client.post("/api/l402/challenges", json=body, headers=headers)
        again = await client.post("/api/l402/challenges", json=body, headers=headers)
        assert first.status_code == 201 and again.status_code == 200, first.text
        assert first.json()["invoice"] == again.json()["invoice"]
    listed = (await client.get("/api/l402/challenges", headers=auth(key))).json()["challenges"]
    assert {c["idempotencyKey"] for c in listed} == {"k" * 255, odd}


async def test_resources_may_carry_a_query(client, merchant):
    _, key = merchant
    resource = "https://api.example/v1/search?q=lightning&page=2"
    created = await client.post(
        "/api/l402/challenges", json={"resource": resource, "priceSats": 3}, headers=auth(key)
    )
    assert created.status_code == 201, created.text
    challenge = created.json()
    preimage = await _pay(client, challenge["invoice"])
    verified = await client.post(
        "/api/l402/challenges/verify",
        json={"macaroon": challenge["macaroon"], "preimage": preimage},
        headers=auth(key),
    )
    assert verified.json()["valid"] is True and verified.json()["resource"] == resource
