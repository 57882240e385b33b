"""Agent identities over real HTTP: register, challenge, sign (BIP-340 or a NIP-42 event), verify; the
directory and its figures computed from real proxy calls and real (dev-node) payments.

Each test makes its own keys, so the shared database needs no cleaning; refused input is checked to leave
nothing behind by counting rows. Tests that move the clock or tighten the challenge limit get their own
gateway.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from boltgate.agent import nostr
from boltgate.agent.models import Agent, AgentChallenge, Agreement, Capability, ServiceRequest
from tests.conftest import free_port
from tests.helpers import auth
from tests.proxy.upstream import Upstream

PROBLEM = "application/problem+json"
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
OFF_CURVE = "EEFDEA4CDB677750A420FEE807EACF21EB9898AE79B9768766E4FAA04A2D4A34"  # BIP-340 vectors, row 5
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
L402_CHALLENGE = re.compile(r'^L402 macaroon="([^"]+)", invoice="([^"]+)"$')
AGENT_FIELDS = {
    "id",
    "pubkey",
    "name",
    "description",
    "isActive",
    "isVerified",
    "verifiedAt",
    "createdAt",
    "updatedAt",
    "totalRequests",
    "totalRevenueSats",
    "activeAgreements",
}


def new_secret() -> bytes:
    while True:
        secret = secrets.token_bytes(32)
        if 0 < int.from_bytes(secret, "big") < N:
            return secret


def problem(response: httpx.Response, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    """Assert an RFC 9457 problem with this status and stable code (and ``errors`` naming ``field``)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    assert next(iter(body)) == "error" and body["error"] == code, body
    assert body["status"] == status and body["message"] == body["detail"] and body["detail"]
    if field is not None:
        assert field in body["errors"], body
    return body


async def register(
    http: httpx.AsyncClient, secret: bytes, key: str | None = None, **fields: Any
) -> dict[str, Any]:
    headers = auth(key) if key else {}
    response = await http.post(
        "/api/agents/register", json={"pubkey": nostr.pubkey_of(secret), **fields}, headers=headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def challenge(http: httpx.AsyncClient, pubkey: str, address: str | None = None) -> dict[str, Any]:
    headers = {"X-Forwarded-For": address} if address else {}
    response = await http.get("/api/agents/challenge", params={"pubkey": pubkey}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def signed(secret: bytes, issued: dict[str, Any]) -> dict[str, str]:
    """The verify body for ``issued``, signed over its ``message`` by ``secret``."""
    signature = nostr.sign(secret, bytes.fromhex(issued["message"])).hex()
    return {"pubkey": issued["pubkey"], "challenge": issued["challenge"], "signature": signature}


async def count(db: Any, model: Any, *where: Any) -> int:
    async with db.reading() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def agent_row(db: Any, pubkey: str) -> Agent | None:
    async with db.reading() as session:
        found: Agent | None = await session.scalar(select(Agent).where(Agent.pubkey == pubkey))
        return found


@pytest.fixture(scope="module")
async def agents_gateway(module_gateway: Any) -> Any:
    """A gateway of this module: the challenge limit out of the way (all calls come from loopback;
    the limit has its own test) and the loopback upstream allowed behind the paid proxy."""
    return await module_gateway(
        agent_challenge_rate_limit="100000/minute", proxy_allow_networks=["127.0.0.1"]
    )


@pytest.fixture
async def client(agents_gateway: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=agents_gateway.base_url, timeout=30) as http:
        yield http


# --- the flow --------------------------------------------------------------------------------------


async def test_register_challenge_sign_verify(client, db):
    secret = new_secret()
    pubkey = nostr.pubkey_of(secret)
    agent = await register(client, secret, name="Weather bot", description="forecasts\nper city")
    assert set(agent) == AGENT_FIELDS
    assert (agent["pubkey"], agent["name"], agent["description"]) == (
        pubkey,
        "Weather bot",
        "forecasts\nper city",
    )
    assert (agent["isActive"], agent["isVerified"], agent["verifiedAt"]) == (True, False, None)
    assert (agent["totalRequests"], agent["totalRevenueSats"], agent["activeAgreements"]) == (0, 0, 0)
    assert RFC3339.match(agent["createdAt"]) and agent["updatedAt"] == agent["createdAt"]

    issued = await challenge(client, pubkey.upper())  # either case names the same key
    assert set(issued) == {"challenge", "pubkey", "expiresInSeconds", "expiresAt", "message", "tag"}
    assert re.fullmatch(r"[0-9a-f]{64}", issued["challenge"]) and issued["pubkey"] == pubkey
    assert issued["expiresInSeconds"] == 300 and issued["tag"] == "boltgate/agent-challenge/v1"
    # the documented message: BIP-340 tagged hash of challenge || pubkey, computed here independently
    tag = hashlib.sha256(b"boltgate/agent-challenge/v1").digest()
    expected = hashlib.sha256(
        tag + tag + bytes.fromhex(issued["challenge"]) + bytes.fromhex(pubkey)
    ).hexdigest()
    assert issued["message"] == expected

    verified = await client.post("/api/agents/verify", json=signed(secret, issued))
    assert verified.status_code == 200, verified.text
    body = verified.json()
    assert set(body) == {"pubkey", "isVerified", "verifiedAt", "message"}
    assert body["pubkey"] == pubkey and body["isVerified"] is True and RFC3339.match(body["verifiedAt"])

    shown = (await client.get(f"/api/agents/{pubkey.upper()}")).json()
    assert (shown["id"], shown["isVerified"], shown["verifiedAt"]) == (agent["id"], True, body["verifiedAt"])
    async with db.reading() as session:
        row = await session.get(AgentChallenge, issued["challenge"])
    assert row is not None and row.used_at is not None


async def test_verify_with_a_signed_nip42_event(client, db):
    secret, other = new_secret(), new_secret()
    pubkey = nostr.pubkey_of(secret)
    await register(client, secret)
    issued = await challenge(client, pubkey)
    now = int(datetime.now(UTC).timestamp())
    tags = [["relay", "wss://relay.example"], ["challenge", issued["challenge"]]]
    good = nostr.sign_event(secret, now, 22242, tags, "").to_json()
    base = {"pubkey": pubkey, "challenge": issued["challenge"]}

    async def refused(event: dict[str, Any], status: int, code: str) -> None:
        problem(await client.post("/api/agents/verify", json={**base, "event": event}), status, code)

    await refused(nostr.sign_event(secret, now, 1, tags, "").to_json(), 400, "wrong_kind")
    await refused({**good, "content": "changed"}, 400, "event_id_mismatch")
    await refused({**good, "sig": good["sig"][:-1]}, 400, "invalid_signature")
    await refused({k: v for k, v in good.items() if k != "tags"}, 400, "invalid_event")
    forged = nostr.sign_event(secret, now, 22242, tags, "other").to_json()["sig"]
    await refused({**good, "sig": forged}, 401, "invalid_signature")
    await refused(nostr.sign_event(other, now, 22242, tags, "").to_json(), 401, "pubkey_mismatch")
    await refused(nostr.sign_event(secret, now - 3600, 22242, tags, "").to_json(), 401, "event_too_old")
    elsewhere = [["challenge", secrets.token_hex(32)]]
    await refused(nostr.sign_event(secret, now, 22242, elsewhere, "").to_json(), 401, "challenge_mismatch")
    both = {**base, "event": good, "signature": signed(secret, issued)["signature"]}
    problem(await client.post("/api/agents/verify", json=both), 400, "validation_error")
    problem(await client.post("/api/agents/verify", json=base), 400, "validation_error")
    assert (await agent_row(db, pubkey)).verified_at is None  # type: ignore[union-attr]

    verified = await client.post("/api/agents/verify", json={**base, "event": good})  # not consumed above
    assert verified.status_code == 200, verified.text
    assert verified.json()["isVerified"] is True


async def test_a_signature_over_another_challenge_is_refused_and_consumes_nothing(client, db):
    secret = new_secret()
    pubkey = nostr.pubkey_of(secret)
    await register(client, secret)
    first, second = await challenge(client, pubkey), await challenge(client, pubkey)
    crossed = {**signed(secret, second), "challenge": first["challenge"]}
    problem(await client.post("/api/agents/verify", json=crossed), 401, "invalid_signature")
    assert (await client.get(f"/api/agents/{pubkey}")).json()["isVerified"] is False
    assert (
        await count(db, AgentChallenge, AgentChallenge.pubkey == pubkey, AgentChallenge.used_at.is_not(None))
        == 0
    )
    assert (await client.post("/api/agents/verify", json=signed(secret, first))).status_code == 200


async def test_a_used_challenge_is_refused_and_verified_at_is_the_latest(client):
    secret = new_secret()
    pubkey = nostr.pubkey_of(secret)
    await register(client, secret)
    issued = await challenge(client, pubkey)
    first = await client.post("/api/agents/verify", json=signed(secret, issued))
    assert first.status_code == 200, first.text
    problem(await client.post("/api/agents/verify", json=signed(secret, issued)), 409, "challenge_used")
    assert (await client.get(f"/api/agents/{pubkey}")).json()["verifiedAt"] == first.json()["verifiedAt"]
    again = await client.post("/api/agents/verify", json=signed(secret, await challenge(client, pubkey)))
    assert again.status_code == 200 and again.json()["verifiedAt"] > first.json()["verifiedAt"]


async def test_an_expired_challenge_is_refused(temp_gateway, db):
    gateway = await temp_gateway(agent_challenge_seconds=30)
    start = datetime.now(UTC)
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        secret = new_secret()
        pubkey = nostr.pubkey_of(secret)
        await register(http, secret)
        gateway.ctx.clock = lambda: start
        on_time = await challenge(http, pubkey)
        late = await challenge(http, pubkey)
        assert on_time["expiresInSeconds"] == 30
        gateway.ctx.clock = lambda: start + timedelta(seconds=29)
        assert (await http.post("/api/agents/verify", json=signed(secret, on_time))).status_code == 200
        gateway.ctx.clock = lambda: start + timedelta(seconds=31)
        problem(await http.post("/api/agents/verify", json=signed(secret, late)), 401, "challenge_expired")
    async with db.reading() as session:
        row = await session.get(AgentChallenge, late["challenge"])
    assert row is not None and row.used_at is None
    agent = await agent_row(db, pubkey)
    assert agent is not None and agent.verified_at == start + timedelta(seconds=29)


async def test_concurrent_verifications_of_one_challenge_let_exactly_one_win(client):
    secret = new_secret()
    await register(client, secret)
    body = signed(secret, await challenge(client, nostr.pubkey_of(secret)))
    answers = await asyncio.gather(*(client.post("/api/agents/verify", json=body) for _ in range(8)))
    assert sorted(a.status_code for a in answers) == [200] + [409] * 7
    assert {a.json()["error"] for a in answers if a.status_code == 409} == {"challenge_used"}


async def test_challenges_expired_long_ago_are_cleared_recent_ones_answer_expired(client, db):
    """Rows crafted in the database: expired a minute ago (kept, so a replay is told why) and two days
    ago (deleted when the agent asks for its next challenge)."""
    secret = new_secret()
    pubkey = nostr.pubkey_of(secret)
    await register(client, secret)
    now = datetime.now(UTC)
    recent, old = secrets.token_hex(32), secrets.token_hex(32)
    async with db.writing() as session:
        for value, age in ((recent, timedelta(minutes=6)), (old, timedelta(days=2))):
            created = now - age
            session.add(
                AgentChallenge(
                    challenge=value,
                    pubkey=pubkey,
                    created_at=created,
                    expires_at=created + timedelta(minutes=5),
                )
            )
    await challenge(client, pubkey)
    assert await count(db, AgentChallenge, AgentChallenge.challenge.in_([recent, old])) == 1
    for value, code in ((recent, "challenge_expired"), (old, "challenge_not_found")):
        proof = {"pubkey": pubkey, "challenge": value}
        proof["signature"] = nostr.sign(secret, nostr.challenge_message(value, pubkey)).hex()
        problem(await client.post("/api/agents/verify", json=proof), 401, code)


async def test_a_challenge_is_bound_to_its_pubkey(client, db):
    secret_a, secret_b = new_secret(), new_secret()
    pub_a, pub_b = nostr.pubkey_of(secret_a), nostr.pubkey_of(secret_b)
    await register(client, secret_a)
    await register(client, secret_b)
    issued = await challenge(client, pub_a)
    # B signs A's challenge as its own: the challenge was not issued to B
    as_b = {"pubkey": pub_b, "challenge": issued["challenge"]}
    as_b["signature"] = nostr.sign(secret_b, nostr.challenge_message(issued["challenge"], pub_b)).hex()
    problem(await client.post("/api/agents/verify", json=as_b), 401, "challenge_not_found")
    # B signs A's message and claims A's pubkey: the signature is not A's
    problem(await client.post("/api/agents/verify", json=signed(secret_b, issued)), 401, "invalid_signature")
    assert (await agent_row(db, pub_b)).verified_at is None  # type: ignore[union-attr]
    assert (await agent_row(db, pub_a)).verified_at is None  # type: ignore[union-attr]
    assert (await client.post("/api/agents/verify", json=signed(secret_a, issued))).status_code == 200


async def test_unknown_challenges_and_agents(client):
    secret = new_secret()
    pubkey = nostr.pubkey_of(secret)
    made_up = secrets.token_hex(32)
    body = {"pubkey": pubkey, "challenge": made_up}
    body["signature"] = nostr.sign(secret, nostr.challenge_message(made_up, pubkey)).hex()
    problem(await client.post("/api/agents/verify", json=body), 404, "agent_not_found")
    problem(await client.get("/api/agents/challenge", params={"pubkey": pubkey}), 404, "agent_not_found")
    problem(await client.get(f"/api/agents/{pubkey}"), 404, "agent_not_found")
    problem(await client.get(f"/api/agents/{pubkey}/stats"), 404, "agent_not_found")
    await register(client, secret)
    problem(await client.post("/api/agents/verify", json=body), 401, "challenge_not_found")


# --- rate limits -----------------------------------------------------------------------------------


async def test_challenges_are_rate_limited_per_pubkey_and_per_address(temp_gateway, db):
    gateway = await temp_gateway(agent_challenge_rate_limit="3/minute")
    secrets_ = [new_secret() for _ in range(5)]
    keys = [nostr.pubkey_of(s) for s in secrets_]
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        for secret in secrets_:
            await register(http, secret)
        for n in range(3):  # one pubkey from three addresses
            await challenge(http, keys[0], f"198.51.100.{n + 1}")
        over = await http.get(
            "/api/agents/challenge", params={"pubkey": keys[0]}, headers={"X-Forwarded-For": "198.51.100.9"}
        )
        problem(over, 429, "rate_limited")
        assert int(over.headers["retry-after"]) >= 1
        assert await count(db, AgentChallenge, AgentChallenge.pubkey == keys[0]) == 3

        for key in keys[1:4]:  # three pubkeys from one address
            await challenge(http, key, "203.0.113.7")
        over = await http.get(
            "/api/agents/challenge", params={"pubkey": keys[4]}, headers={"X-Forwarded-For": "203.0.113.7"}
        )
        problem(over, 429, "rate_limited")
        assert int(over.headers["retry-after"]) >= 1
        assert await count(db, AgentChallenge, AgentChallenge.pubkey == keys[4]) == 0
        await challenge(http, keys[4], "203.0.113.8")  # the refused call did not count against the key


# --- refused input ---------------------------------------------------------------------------------

BAD_PUBKEYS = [
    pytest.param("a" * 63, id="63-hex"),
    pytest.param("a" * 65, id="65-hex"),
    pytest.param("g" * 64, id="non-hex"),
    pytest.param(" " + "a" * 63, id="space"),
    pytest.param(OFF_CURVE, id="not-on-the-curve"),
]


@pytest.mark.parametrize("pubkey", BAD_PUBKEYS)
async def test_bad_pubkeys_are_refused_and_nothing_is_stored(client, db, pubkey):
    agents, challenges = await count(db, Agent), await count(db, AgentChallenge)
    body = {"pubkey": pubkey, "name": "x"}
    problem(await client.post("/api/agents/register", json=body), 400, "invalid_pubkey", "pubkey")
    problem(await client.get("/api/agents/challenge", params={"pubkey": pubkey}), 400, "invalid_pubkey")
    problem(await client.get(f"/api/agents/{pubkey}"), 400, "invalid_pubkey")
    problem(await client.get(f"/api/agents/{pubkey}/stats"), 400, "invalid_pubkey")
    proof = {"pubkey": pubkey, "challenge": "00" * 32, "signature": "00" * 64}
    problem(await client.post("/api/agents/verify", json=proof), 400, "invalid_pubkey", "pubkey")
    problem(await client.post("/api/agents/register", json={"pubkey": 7}), 400, "validation_error", "pubkey")
    assert (await count(db, Agent), await count(db, AgentChallenge)) == (agents, challenges)


async def test_bad_signatures_and_challenges_are_refused_and_consume_nothing(client, db):
    secret = new_secret()
    pubkey = nostr.pubkey_of(secret)
    await register(client, secret)
    issued = await challenge(client, pubkey)
    good = signed(secret, issued)
    for bad in ("a" * 127, "a" * 129, "z" * 128, "", good["signature"][:-2] + " 0"):
        response = await client.post("/api/agents/verify", json={**good, "signature": bad})
        problem(response, 400, "invalid_signature", "signature")
    for bad in ("a" * 63, "a" * 65, "x" * 64, ""):
        response = await client.post("/api/agents/verify", json={**good, "challenge": bad})
        problem(response, 400, "invalid_challenge", "challenge")
    problem(await client.post("/api/agents/verify", json={**good, "signature": 5}), 400, "validation_error")
    problem(
        await client.post("/api/agents/verify", content=b"{", headers={"content-type": "application/json"}),
        400,
        "malformed_json",
    )
    assert (
        await count(db, AgentChallenge, AgentChallenge.pubkey == pubkey, AgentChallenge.used_at.is_not(None))
        == 0
    )
    upper = {**good, "signature": good["signature"].upper(), "challenge": good["challenge"].upper()}
    assert (await client.post("/api/agents/verify", json=upper)).status_code == 200


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "n" * 201}, "name"),
        ({"name": ""}, "name"),
        ({"name": "bad\x00name"}, "name"),
        ({"name": "two\nlines"}, "name"),
        ({"description": "d" * 1001}, "description"),
        ({"description": "bell\x07"}, "description"),
        ({"name": 12}, "name"),
    ],
)
async def test_bad_profiles_are_refused_and_nothing_is_stored(client, db, fields, field):
    pubkey = nostr.pubkey_of(new_secret())
    response = await client.post("/api/agents/register", json={"pubkey": pubkey, **fields})
    problem(response, 400, "validation_error", field)
    assert await count(db, Agent, Agent.pubkey == pubkey) == 0


async def test_unknown_fields_are_ignored_and_cannot_verify(client):
    extra = {
        "isVerified": True,
        "verifiedAt": "2020-01-01T00:00:00Z",
        "id": "agt_mine",
        "totalRevenueSats": 9,
    }
    agent = await register(client, new_secret(), name="n" * 200, **extra)
    assert (agent["isVerified"], agent["verifiedAt"], agent["totalRevenueSats"]) == (False, None, 0)
    assert agent["id"] != "agt_mine" and len(agent["name"]) == 200


# --- registration again, ownership ----------------------------------------------------------------


async def test_registering_again_updates_for_the_same_owner_only(client, db, make_merchant):
    (_, key_1), (_, key_2) = await make_merchant(), await make_merchant()
    anonymous, owned = new_secret(), new_secret()
    first = await register(client, anonymous, name="first", description="kept")
    again = await client.post(
        "/api/agents/register", json={"pubkey": nostr.pubkey_of(anonymous), "name": "second"}
    )
    assert again.status_code == 200, again.text
    # without an owner's key nothing proves who asks: an unowned agent keeps its first profile
    assert (again.json()["id"], again.json()["name"], again.json()["description"]) == (
        first["id"],
        "first",
        "kept",
    )
    claimed = await client.post(
        "/api/agents/register", json={"pubkey": nostr.pubkey_of(anonymous)}, headers=auth(key_1)
    )
    problem(claimed, 409, "agent_exists")

    pubkey = nostr.pubkey_of(owned)
    await register(client, owned, key_1, name="mine")
    assert (await agent_row(db, pubkey)).merchant_id is not None  # type: ignore[union-attr]
    same = await client.post(
        "/api/agents/register", json={"pubkey": pubkey, "name": "renamed"}, headers=auth(key_1)
    )
    assert same.status_code == 200 and same.json()["name"] == "renamed"
    for headers in (auth(key_2), {}):
        response = await client.post(
            "/api/agents/register", json={"pubkey": pubkey, "name": "theirs"}, headers=headers
        )
        problem(response, 409, "agent_exists")
    assert (await client.get(f"/api/agents/{pubkey}")).json()["name"] == "renamed"

    stranger = nostr.pubkey_of(new_secret())
    response = await client.post(
        "/api/agents/register", json={"pubkey": stranger}, headers=auth("le_live_" + "x" * 40)
    )
    problem(response, 401, "invalid_api_key")
    assert await count(db, Agent, Agent.pubkey == stranger) == 0


async def test_concurrent_registrations_of_one_pubkey_make_one_agent(client, db):
    pubkey = nostr.pubkey_of(new_secret())
    answers = await asyncio.gather(
        *(client.post("/api/agents/register", json={"pubkey": pubkey}) for _ in range(6))
    )
    assert sorted(a.status_code for a in answers) == [200] * 5 + [201]
    assert len({a.json()["id"] for a in answers}) == 1
    assert await count(db, Agent, Agent.pubkey == pubkey) == 1


async def test_post_only_routes_and_the_optional_api_key_are_documented(client):
    for path in ("/api/agents/register", "/api/agents/verify"):  # not taken for a pubkey by GET /{pubkey}
        response = await client.get(path)
        problem(response, 405, "method_not_allowed")
        assert response.headers["allow"] == "POST"
    operation = (await client.get("/openapi.json")).json()["paths"]["/api/agents/register"]["post"]
    assert operation["security"] == [{}, {"ApiKeyAuth": []}]
    assert {"200", "201", "400", "401", "409", "429"} <= set(operation["responses"])


# --- the directory ---------------------------------------------------------------------------------


async def test_list_newest_first_filtered_by_verification(client):
    older_secret, newer_secret = new_secret(), new_secret()
    older = await register(client, older_secret)
    newer = await register(client, newer_secret)
    issued = await challenge(client, older["pubkey"])
    assert (await client.post("/api/agents/verify", json=signed(older_secret, issued))).status_code == 200

    listed = await client.get("/api/agents", params={"limit": 100})
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert set(body) == {"agents", "total", "limit", "offset"} and (body["limit"], body["offset"]) == (100, 0)
    ids = [a["id"] for a in body["agents"]]
    assert ids.index(newer["id"]) < ids.index(older["id"])
    assert all(set(a) == AGENT_FIELDS and a["isActive"] for a in body["agents"])
    verified = (await client.get("/api/agents", params={"verified": "true", "limit": 100})).json()
    unverified = (await client.get("/api/agents", params={"verified": "false", "limit": 100})).json()
    assert older["id"] in {a["id"] for a in verified["agents"]} and newer["id"] not in {
        a["id"] for a in verified["agents"]
    }
    assert newer["id"] in {a["id"] for a in unverified["agents"]}
    assert all(a["isVerified"] for a in verified["agents"]) and not any(
        a["isVerified"] for a in unverified["agents"]
    )
    assert verified["total"] + unverified["total"] == body["total"]
    page = (await client.get("/api/agents", params={"limit": 1, "offset": 1})).json()
    assert [a["id"] for a in page["agents"]] == ids[1:2] and page["total"] == body["total"]
    for params in ({"limit": 0}, {"limit": 101}, {"offset": -1}, {"verified": "maybe"}):
        problem(await client.get("/api/agents", params=params), 400, "validation_error")


# --- figures from real usage -----------------------------------------------------------------------


@pytest.fixture(scope="module")
async def agent_upstream() -> AsyncIterator[Upstream]:
    server = Upstream(free_port())
    await server.start()
    yield server
    await server.stop()


async def _paid_calls(http: httpx.AsyncClient, url: str, calls: int) -> None:
    """One unpaid call (402), a payment through the dev node, then ``calls`` paid calls."""
    response = await http.get(url)
    assert response.status_code == 402, response.text
    found = L402_CHALLENGE.match(response.headers.get_list("www-authenticate")[0])
    assert found
    paid = await http.post("/api/dev/pay", json={"invoice": found.group(2)})
    assert paid.status_code == 200 and paid.json()["status"] == "settled", paid.text
    token = {"authorization": f"L402 {found.group(1)}:{paid.json()['preimage']}"}
    for _ in range(calls):
        assert (await http.get(url, headers=token)).status_code == 200


async def _market_rows(db: Any, merchant_id: str, pubkey: str, proxy_id: str) -> None:
    """Two listings of the agent in front of one proxy, and agreements: open-ended, future, expired."""
    now = datetime.now(UTC)
    async with db.writing() as session:
        events = [secrets.token_hex(32) for _ in range(2)]
        for event_id in events:
            session.add(
                Capability(
                    event_id=event_id,
                    merchant_id=merchant_id,
                    agent_pubkey=pubkey,
                    service_id="weather",
                    proxy_id=proxy_id,
                    content="Weather",
                    price_sats=5,
                    status="active",
                    created_at=now,
                )
            )
        await session.flush()
        for expires_at, provider in (
            (None, pubkey),
            (now + timedelta(days=1), pubkey),
            (now - timedelta(seconds=1), pubkey),
            (None, "ab" * 32),
        ):
            request_id = secrets.token_hex(32)
            session.add(
                ServiceRequest(
                    event_id=request_id,
                    capability_event_id=events[0],
                    requester_merchant_id=merchant_id,
                    budget_sats=10,
                    created_at=now,
                )
            )
            await session.flush()
            session.add(
                Agreement(
                    event_id=secrets.token_hex(32),
                    request_event_id=request_id,
                    capability_event_id=events[0],
                    provider_pubkey=provider,
                    price_sats=5,
                    expires_at=expires_at,
                    created_at=now,
                )
            )


async def test_stats_come_from_real_proxy_usage_and_payments(client, make_merchant, agent_upstream, db):
    merchant_id, key = await make_merchant()
    secret = new_secret()
    pubkey = nostr.pubkey_of(secret)
    agent = await register(client, secret, key, name="Weather bot")
    assert (await agent_row(db, pubkey)).merchant_id == merchant_id  # type: ignore[union-attr]
    body = {"name": "Weather API", "targetBaseUrl": agent_upstream.base_url, "defaultPriceSats": 5}
    created = await client.post("/api/proxy", json=body, headers=auth(key))
    assert created.status_code == 201, created.text
    proxy_id = created.json()["proxyId"]
    await _market_rows(db, merchant_id, pubkey, proxy_id)
    await _paid_calls(client, f"/l402/proxy/{proxy_id}/forecast/paris", calls=2)

    stats = await client.get(f"/api/agents/{pubkey}/stats")
    assert stats.status_code == 200, stats.text
    figures = stats.json()
    assert set(figures) == {
        "pubkey",
        "name",
        "totalRequests",
        "totalRevenueSats",
        "activeAgreements",
        "averageRevenuePerRequest",
        "isActive",
        "registeredAt",
        "lastUpdated",
    }
    assert (figures["pubkey"], figures["name"], figures["isActive"]) == (pubkey, "Weather bot", True)
    # 3 requests (the 402 and two paid calls), 5 sats paid once, proxy counted once for two listings
    assert (figures["totalRequests"], figures["totalRevenueSats"], figures["activeAgreements"]) == (
        3,
        5,
        2,
    )
    assert figures["averageRevenuePerRequest"] == pytest.approx(5 / 3, abs=1e-4)
    assert figures["registeredAt"] == agent["createdAt"] and RFC3339.match(figures["lastUpdated"])
    shown = (await client.get(f"/api/agents/{pubkey}")).json()
    assert (shown["totalRequests"], shown["totalRevenueSats"], shown["activeAgreements"]) == (3, 5, 2)
    listed = (await client.get("/api/agents", params={"limit": 100})).json()["agents"]
    mine = next(a for a in listed if a["pubkey"] == pubkey)
    assert (mine["totalRequests"], mine["totalRevenueSats"], mine["activeAgreements"]) == (3, 5, 2)

    fresh = await register(client, new_secret())
    zero = (await client.get(f"/api/agents/{fresh['pubkey']}/stats")).json()
    assert (zero["totalRequests"], zero["totalRevenueSats"], zero["averageRevenuePerRequest"]) == (
        0,
        0,
        0,
    )


async def test_challenges_a_day_past_their_expiry_are_forgotten(db):
    from boltgate.agent import identity

    now = datetime.now(UTC)
    pubkey = nostr.pubkey_of(new_secret())
    rows = {
        "old": now - timedelta(days=1, seconds=1),  # expired over a day ago: deleted
        "recent": now - timedelta(hours=23),  # expired, still answered "expired": kept
        "live": now + timedelta(minutes=5),
    }
    ids = {name: secrets.token_hex(32) for name in rows}
    async with db.writing() as session:
        for name, expires in rows.items():
            session.add(
                AgentChallenge(challenge=ids[name], pubkey=pubkey, created_at=now, expires_at=expires)
            )
    async with db.writing() as session:
        assert await identity.forget_stale_challenges(session, now) >= 1
    async with db.reading() as session:
        left = {name for name, value in ids.items() if await session.get(AgentChallenge, value) is not None}
    assert left == {"recent", "live"}
