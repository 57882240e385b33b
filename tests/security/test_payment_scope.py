"""A paid credential opens what it was sold for and nothing else: a ``Payment`` credential paid for
a cheap route does not open a dearer one, and a challenge a merchant minted for itself (on its own
terms, possibly for a resource named like a gateway route) opens no gateway route."""

from __future__ import annotations

import base64
import json
import re

import httpx

from boltgate.l402 import mpp
from tests.helpers import auth

L402_LINE = re.compile(r'^L402 macaroon="([A-Za-z0-9+/=]+)", invoice="(lnbcrt[0-9a-z]+)"$')
PREMIUM = "/api/l402/premium-data"  # 10 sats
PING = "/l402/test/ping"  # 1 sat


async def offer(client: httpx.AsyncClient, path: str) -> tuple[str, str, str]:
    """(macaroon, invoice, Payment challenge line) of a route's 402."""
    response = await client.get(path)
    assert response.status_code == 402, response.text
    l402, payment = response.headers.get_list("www-authenticate")
    found = L402_LINE.match(l402)
    assert found and payment.startswith("Payment ")
    return found.group(1), found.group(2), payment


async def pay(client: httpx.AsyncClient, invoice: str) -> str:
    paid = await client.post("/api/dev/pay", json={"invoice": invoice})
    assert paid.status_code == 200, paid.text
    return str(paid.json()["preimage"])


def modern(challenge_line: str, preimage: str) -> str:
    (params,) = mpp.parse_challenges(challenge_line)
    body = {"challenge": params, "payload": {"preimage": preimage}}
    return "Payment " + base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")


def legacy(preimage: str) -> str:
    return f'Payment method="lightning", preimage="{preimage}"'


async def refused(client: httpx.AsyncClient, path: str, authorization: str) -> httpx.Response:
    response = await client.get(path, headers={"authorization": authorization})
    assert response.status_code == 402, response.text
    assert response.json()["error"] == "payment_required"
    return response


async def test_a_payment_credential_for_a_cheap_route_does_not_open_a_dear_one(client):
    _, invoice, line = await offer(client, PING)
    preimage = await pay(client, invoice)
    await refused(client, PREMIUM, modern(line, preimage))
    await refused(client, PREMIUM, legacy(preimage))
    # neither attempt spent the credential: it still opens the route it was bought for, once
    assert (await client.get(PING, headers={"authorization": modern(line, preimage)})).status_code == 200
    await refused(client, PING, legacy(preimage))


async def test_a_challenge_a_merchant_minted_opens_no_gateway_route(client, merchant):
    _, key = merchant
    minted = await client.post(
        "/api/l402/challenges", json={"resource": f"GET {PREMIUM}", "priceSats": 1}, headers=auth(key)
    )
    assert minted.status_code == 201, minted.text
    challenge = minted.json()
    preimage = await pay(client, challenge["invoice"])
    await refused(client, PREMIUM, f"L402 {challenge['macaroon']}:{preimage}")
    await refused(client, PREMIUM, modern(challenge["mppChallenge"], preimage))
    await refused(client, PREMIUM, legacy(preimage))
    # it stays good where it belongs: the merchant's own verification
    verified = await client.post(
        "/api/l402/challenges/verify",
        json={"macaroon": challenge["macaroon"], "preimage": preimage},
        headers=auth(key),
    )
    assert verified.json()["valid"] is True
