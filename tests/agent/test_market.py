"""The agent marketplace over real HTTP: listings in front of a real upstream, search, unpublishing,
requests and agreements for both sides, reviews signed by the reviewers' own keys (one verified by a
payment made through the proxy), every refusal storing nothing, and the published MCP client.

Agents are written straight into the ``agents`` table (verified): registering them is the identity
API's business and has its own tests.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from boltgate.agent import nostr
from boltgate.agent.models import Agent, Attestation, Capability, NostrEvent, ServiceRequest
from boltgate.db.engine import Database
from boltgate.kit.ids import new_id
from boltgate.proxy.models import Proxy
from tests.conftest import Gateway
from tests.helpers import auth
from tests.proxy.conftest import pclient, proxy_gateway, upstream
from tests.proxy.upstream import Upstream

FIXTURES = (pclient, proxy_gateway, upstream)  # the proxy tests' real upstream and loopback-allowed gateway

logging.getLogger().setLevel(logging.WARNING)  # the MCP package sets the root logger to INFO on import
from lightning_enable_mcp.lightning_enable_api import LightningEnableApiClient  # noqa: E402

L402_LINE = re.compile(r'^L402 macaroon="([A-Za-z0-9+/=]+)", invoice="(lnbcrt[0-9a-z]+)"$')
MakeMerchant = Callable[..., Awaitable[tuple[str, str]]]


# --- helpers ------------------------------------------------------------------------------------------


class Party:
    """A merchant (API key) with a verified agent key of its own."""

    def __init__(self, merchant_id: str, key: str, secret: bytes) -> None:
        self.merchant_id, self.key, self.secret = merchant_id, key, secret
        self.pubkey = nostr.pubkey_of(secret)


async def add_agent(db: Database, merchant_id: str) -> bytes:
    secret = os.urandom(32)
    now = datetime.now(UTC)
    async with db.writing() as session:
        session.add(
            Agent(
                id=new_id("agt"),
                pubkey=nostr.pubkey_of(secret),
                merchant_id=merchant_id,
                name=None,
                description=None,
                is_active=True,
                verified_at=now,
                created_at=now,
                updated_at=now,
            )
        )
    return secret


@pytest.fixture
def party(db: Database, make_merchant: MakeMerchant) -> Callable[[], Awaitable[Party]]:
    async def make() -> Party:
        merchant_id, key = await make_merchant()
        return Party(merchant_id, key, await add_agent(db, merchant_id))

    return make


def listing(upstream_url: str, **fields: Any) -> dict[str, Any]:
    body = {
        "serviceId": "translate-fr",
        "categories": ["ai", "Translation"],
        "content": "French to English, by the page",
        "priceSats": 7,
        "l402Endpoint": None,
        "targetUrl": upstream_url,
        "hashtags": ["#Bitcoin", "nlp", "NLP"],
    }
    return {**body, **fields}


async def publish(client: httpx.AsyncClient, key: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/api/agents/capabilities", json=body, headers=auth(key))
    assert response.status_code == 201, response.text
    out: dict[str, Any] = response.json()
    return out


async def exported(client: httpx.AsyncClient, since: int, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/api/agents/events", params={"since": since, "limit": 1000, **params})
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def by_id(events: list[dict[str, Any]], event_id: str) -> dict[str, Any]:
    [found] = [event for event in events if event["id"] == event_id]
    return found


def review(
    secret: bytes, subject: str, agreement: str, rating: str = "5", proof: str | None = None, **over: Any
) -> dict[str, Any]:
    tags = [["p", subject, "", "subject"], ["e", agreement, "", "agreement"], ["rating", rating]]
    tags += [["proof", proof]] if proof else []
    event = nostr.sign_event(secret, int(time.time()), over.pop("kind", 38403), tags, "fast and accurate")
    return {**event.to_json(), **over}


async def count(db: Database, model: Any, *where: Any) -> int:
    async with db.reading() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def pay_through(client: httpx.AsyncClient, url: str) -> str:
    """Call a paid URL, pay its invoice on the dev node, call again: the payment hash."""
    first = await client.get(url)
    assert first.status_code == 402, first.text
    found = L402_LINE.match(first.headers.get_list("www-authenticate")[0])
    assert found
    paid = await client.post("/api/dev/pay", json={"invoice": found.group(2)})
    assert paid.status_code == 200, paid.text
    token = f"L402 {found.group(1)}:{paid.json()['preimage']}"
    second = await client.get(url, headers={"authorization": token})
    assert second.status_code == 200, second.text
    return str(paid.json()["paymentHash"])


async def deal(client: httpx.AsyncClient, provider: Party, requester: Party, target: str) -> dict[str, Any]:
    """A listing of ``provider``, a request of ``requester`` and the provider's agreement."""
    capability = await publish(client, provider.key, listing(target))
    asked = await client.post(
        "/api/agents/requests",
        json={"capabilityEventId": capability["eventId"], "budgetSats": 10, "parameters": None},
        headers=auth(requester.key),
    )
    assert asked.status_code == 201, asked.text
    agreed = await client.post(
        "/api/agents/agreements",
        json={"requestEventId": asked.json()["requestEventId"], "priceSats": 7},
        headers=auth(provider.key),
    )
    assert agreed.status_code == 201, agreed.text
    return {"capability": capability, "request": asked.json(), "agreement": agreed.json()}


# --- capabilities -------------------------------------------------------------------------------------


async def test_a_listing_gets_a_proxy_and_a_platform_signed_event(
    pclient: httpx.AsyncClient, proxy_gateway: Gateway, upstream: Upstream, party: Any
) -> None:
    provider = await party()
    since = int(time.time())
    out = await publish(pclient, provider.key, listing(upstream.base_url))
    platform = proxy_gateway.ctx.platform.pubkey
    assert out["pubkey"] == platform and out["serviceId"] == "translate-fr"
    assert out["l402Endpoint"] == f"{proxy_gateway.base_url}/l402/proxy/{out['proxyId']}"
    assert out["l402Endpoint"].rsplit("/", 1)[1] == out["proxyId"]  # what the MCP unpublishes by
    assert out["dTag"] == f"translate-fr:{out['proxyId']}"

    event = nostr.parse_event(by_id(await exported(pclient, since), out["eventId"]))  # id and signature
    assert (event.kind, event.pubkey, event.content) == (38400, platform, "French to English, by the page")
    assert [list(tag) for tag in event.tags] == [
        ["d", out["dTag"]],
        ["s", "ai"],
        ["s", "Translation"],
        ["price", "7", "sats", "per-request"],
        ["l402", out["l402Endpoint"]],
        ["t", "bitcoin"],
        ["t", "nlp"],
        ["status", "active"],
    ]
    proxy = (await pclient.get(f"/api/proxy/{out['proxyId']}", headers=auth(provider.key))).json()
    assert (proxy["name"], proxy["defaultPriceSats"], proxy["targetBaseUrl"]) == (
        "translate-fr",
        7,
        upstream.base_url,
    )
    assert proxy["categories"] == ["ai", "Translation"] and proxy["description"] == event.content
    unpaid = await pclient.get(out["l402Endpoint"] + "/translate")
    assert unpaid.status_code == 402 and unpaid.json()["priceSats"] == 7
    async with proxy_gateway.ctx.db.reading() as session:
        row = await session.get(Capability, out["eventId"])
    assert row is not None and row.agent_pubkey == provider.pubkey and row.proxy_id == out["proxyId"]


async def test_an_external_endpoint_needs_no_proxy(
    pclient: httpx.AsyncClient, merchant: Any, db: Database
) -> None:
    merchant_id, key = merchant
    word = "x" + secrets.token_hex(6)
    body = listing("", targetUrl=None, l402Endpoint="https://api.example.com/paid", content=word)
    out = await publish(pclient, key, body)
    assert out["proxyId"] is None and out["l402Endpoint"] == "https://api.example.com/paid"
    assert out["dTag"].startswith("translate-fr:lst_")
    assert await count(db, Proxy, Proxy.merchant_id == merchant_id) == 0
    found = (await pclient.get("/api/agents/capabilities", params={"q": word})).json()
    assert [item["agentPubkey"] for item in found["items"]] == [None]  # no verified agent: none


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"targetUrl": None}, 400, "endpoint_required"),
        ({"targetUrl": "ftp://example.com/x"}, 400, "invalid_target_url"),
        ({"targetUrl": "http://10.1.2.3/api"}, 400, "target_not_allowed"),
        ({"targetUrl": None, "l402Endpoint": "javascript:alert(1)"}, 400, "invalid_l402_endpoint"),
        ({"targetUrl": None, "l402Endpoint": "https://u:p@example.com/"}, 400, "invalid_l402_endpoint"),
        ({"priceSats": 0}, 400, "validation_error"),
        ({"priceSats": "7"}, 400, "validation_error"),
        ({"categories": []}, 400, "validation_error"),
        ({"categories": ["a,b"]}, 400, "validation_error"),
        ({"hashtags": ["two words"]}, 400, "validation_error"),
        ({"serviceId": "bad\x00id"}, 400, "validation_error"),
        ({"content": "x" * 4001}, 400, "validation_error"),
    ],
)
async def test_bad_listings_are_refused_and_nothing_is_stored(
    pclient: httpx.AsyncClient,
    upstream: Upstream,
    merchant: Any,
    db: Database,
    fields: Any,
    status: int,
    code: str,
) -> None:
    merchant_id, key = merchant
    response = await pclient.post(
        "/api/agents/capabilities", json=listing(upstream.base_url, **fields), headers=auth(key)
    )
    assert (response.status_code, response.json()["error"]) == (status, code), response.text
    if code.endswith("target_url") or code == "target_not_allowed":
        assert list(response.json()["errors"]) == ["targetUrl"]
    assert await count(db, Capability, Capability.merchant_id == merchant_id) == 0
    assert await count(db, Proxy, Proxy.merchant_id == merchant_id) == 0


async def test_publishing_needs_an_api_key(pclient: httpx.AsyncClient, upstream: Upstream) -> None:
    response = await pclient.post("/api/agents/capabilities", json=listing(upstream.base_url))
    assert response.status_code == 401


async def test_search_by_category_words_hashtags_and_limit(
    pclient: httpx.AsyncClient, upstream: Upstream, merchant: Any
) -> None:
    _, key = merchant
    word = "w" + secrets.token_hex(6)  # only this test's listings carry it
    first = await publish(pclient, key, listing(upstream.base_url, content=f"{word} Été summaries"))
    second = await publish(
        pclient,
        key,
        listing(upstream.base_url, serviceId=f"{word}-ocr", categories=["Vision"], hashtags=[f"{word}tag"]),
    )
    third = await publish(
        pclient, key, listing(upstream.base_url, content=f"{word} poems", hashtags=[f"{word}x", "Poetry"])
    )

    async def ids(**params: Any) -> list[str]:
        response = await pclient.get("/api/agents/capabilities", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["total"] >= len(body["items"])
        return [item["eventId"] for item in body["items"]]

    newest_first = [third["eventId"], second["eventId"], first["eventId"]]
    assert await ids(q=word) == newest_first
    assert await ids(q=f"{word} ÉTÉ") == [first["eventId"]]  # every word, folded beyond ASCII
    assert await ids(q=word, category="vision") == [second["eventId"]]  # a whole category, any case
    assert await ids(q=word, category="visio") == []
    assert await ids(q=word, hashtags=f"#{word.upper()}TAG,{word}x") == [third["eventId"], second["eventId"]]
    assert await ids(q=word, limit=2) == newest_first[:2]
    body = (await pclient.get("/api/agents/capabilities", params={"q": word, "limit": 1})).json()
    assert body["total"] == 3
    [item] = body["items"]
    assert item["id"] == item["eventId"] == third["eventId"] and item["priceSats"] == 7
    assert item["hashtags"] == [f"{word}x", "poetry"] and item["status"] == "active"
    assert item["serviceId"] == "translate-fr" and item["dTag"] == f"translate-fr:{item['proxyId']}"
    for params in ({"limit": 0}, {"limit": 101}, {"category": "a,b"}):
        assert (await pclient.get("/api/agents/capabilities", params=params)).status_code == 400


# --- unpublishing -------------------------------------------------------------------------------------


async def test_unpublish_deletes_and_replaces_the_listing_once(
    pclient: httpx.AsyncClient, proxy_gateway: Gateway, upstream: Upstream, merchant: Any, db: Database
) -> None:
    _, key = merchant
    since = int(time.time())
    word = "u" + secrets.token_hex(6)
    out = await publish(pclient, key, listing(upstream.base_url, content=word))
    assert (await pclient.get("/api/agents/capabilities", params={"q": word})).json()["total"] == 1
    retired = await pclient.post(
        f"/api/proxy/{out['proxyId']}/unpublish", json={"reason": "closing"}, headers=auth(key)
    )
    assert retired.json() == {"proxyId": out["proxyId"], "retired": True, "alreadyRetired": False}

    events = await exported(pclient, since)
    original = nostr.parse_event(by_id(events, out["eventId"]))
    platform = proxy_gateway.ctx.platform.pubkey
    [deletion] = [e for e in events if e["kind"] == 5 and ["e", out["eventId"]] in e["tags"]]
    nostr.parse_event(deletion)
    assert deletion["pubkey"] == platform and deletion["content"] == "closing"
    assert deletion["tags"] == [
        ["e", out["eventId"]],
        ["a", f"38400:{platform}:{out['dTag']}"],
        ["k", "38400"],
    ]
    [replacement] = [
        e
        for e in events
        if e["kind"] == 38400 and ["d", out["dTag"]] in e["tags"] and e["id"] != out["eventId"]
    ]
    nostr.parse_event(replacement)
    assert (
        replacement["created_at"] > original.created_at and replacement["created_at"] > deletion["created_at"]
    )
    assert replacement["tags"][-1] == ["status", "removed"] and replacement["content"] == original.content
    assert replacement["tags"][:-1] == [list(tag) for tag in original.tags][:-1]

    search = (await pclient.get("/api/agents/capabilities", params={"q": word})).json()
    assert search == {"items": [], "total": 0}
    assert (await pclient.get(out["l402Endpoint"] + "/x")).status_code == 410
    async with db.reading() as session:
        row = await session.get(Capability, out["eventId"])
    assert row is not None and (row.status, row.removal_event_id) == ("removed", deletion["id"])

    stored = await count(db, NostrEvent)
    again = await pclient.post(f"/api/proxy/{out['proxyId']}/unpublish", headers=auth(key))
    assert again.json()["alreadyRetired"] is True
    assert await count(db, NostrEvent) == stored  # nothing emitted the second time
    gone = await pclient.post(
        "/api/agents/requests", json={"capabilityEventId": out["eventId"], "budgetSats": 9}, headers=auth(key)
    )
    assert (gone.status_code, gone.json()["error"]) == (410, "capability_removed")


async def test_a_deleted_proxy_takes_its_listing_off_the_market(
    pclient: httpx.AsyncClient, upstream: Upstream, merchant: Any
) -> None:
    _, key = merchant
    word = "d" + secrets.token_hex(6)
    out = await publish(pclient, key, listing(upstream.base_url, content=word))
    assert (await pclient.delete(f"/api/proxy/{out['proxyId']}", headers=auth(key))).status_code == 204
    assert (await pclient.get("/api/agents/capabilities", params={"q": word})).json()["total"] == 0
    asked = await pclient.post(
        "/api/agents/requests", json={"capabilityEventId": out["eventId"], "budgetSats": 9}, headers=auth(key)
    )
    assert (asked.status_code, asked.json()["error"]) == (410, "capability_removed")


# --- requests and agreements --------------------------------------------------------------------------


async def test_requests_and_agreements_for_both_sides(
    pclient: httpx.AsyncClient,
    proxy_gateway: Gateway,
    upstream: Upstream,
    party: Any,
    merchant: Any,
    db: Database,
) -> None:
    provider, requester = await party(), await party()
    _, stranger_key = merchant
    since = int(time.time())
    capability = await publish(pclient, provider.key, listing(upstream.base_url))
    asked = await pclient.post(
        "/api/agents/requests",
        json={
            "capabilityEventId": capability["eventId"],
            "budgetSats": 5,
            "parameters": '{"pages": 3, "to": "en"}',
        },
        headers=auth(requester.key),
    )
    assert asked.status_code == 201, asked.text
    out = asked.json()
    assert (
        out["l402Endpoint"] == capability["l402Endpoint"] and out["withinBudget"] is False
    )  # recorded anyway
    event = nostr.parse_event(by_id(await exported(pclient, since, kinds="38401"), out["requestEventId"]))
    assert event.content == '{"pages": 3, "to": "en"}'
    assert [list(tag) for tag in event.tags] == [
        ["e", capability["eventId"]],
        ["p", provider.pubkey],
        ["budget", "5"],
        ["param", "pages", "3"],
        ["param", "to", '"en"'],
    ]

    for body, status, code in [
        (
            {"capabilityEventId": capability["eventId"], "budgetSats": 5, "parameters": "{oops"},
            400,
            "invalid_parameters",
        ),
        ({"capabilityEventId": "ab" * 32, "budgetSats": 5}, 404, "capability_not_found"),
        ({"capabilityEventId": capability["eventId"], "budgetSats": 0}, 400, "validation_error"),
    ]:
        refused = await pclient.post("/api/agents/requests", json=body, headers=auth(requester.key))
        assert (refused.status_code, refused.json()["error"]) == (status, code)
    assert await count(db, ServiceRequest, ServiceRequest.requester_merchant_id == requester.merchant_id) == 1

    answer = {
        "requestEventId": out["requestEventId"],
        "priceSats": 7,
        "terms": "48 h",
        "expiresInSeconds": 3600,
    }
    for key in (requester.key, stranger_key):  # only the provider's merchant may answer
        refused = await pclient.post("/api/agents/agreements", json=answer, headers=auth(key))
        assert (refused.status_code, refused.json()["error"]) == (404, "request_not_found")
    agreed = await pclient.post("/api/agents/agreements", json=answer, headers=auth(provider.key))
    assert agreed.status_code == 201, agreed.text
    agreement = agreed.json()
    assert (agreement["providerPubkey"], agreement["requesterPubkey"]) == (provider.pubkey, requester.pubkey)
    event = nostr.parse_event(by_id(await exported(pclient, since, kinds="38402"), agreement["eventId"]))
    tags = [list(tag) for tag in event.tags]
    assert tags[:6] == [
        ["e", out["requestEventId"], "", "request"],
        ["e", capability["eventId"], "", "capability"],
        ["p", provider.pubkey, "", "provider"],
        ["p", requester.pubkey, "", "requester"],
        ["price", "7"],
        ["l402", capability["l402Endpoint"]],
    ]
    assert tags[6] == ["terms", "48 h"] and tags[7][0] == "expiration"
    assert int(tags[7][1]) == event.created_at + 3600
    again = await pclient.post("/api/agents/agreements", json=answer, headers=auth(provider.key))
    assert (again.status_code, again.json()["error"]) == (409, "agreement_exists")

    async def listed(path: str, key: str, role: str) -> list[str]:
        response = await pclient.get(f"/api/agents/{path}", params={"role": role}, headers=auth(key))
        assert response.status_code == 200, response.text
        return [item["eventId"] for item in response.json()["items"]]

    assert await listed("requests", requester.key, "requester") == [out["requestEventId"]]
    assert await listed("requests", provider.key, "provider") == [out["requestEventId"]]
    assert await listed("requests", provider.key, "requester") == []
    assert await listed("agreements", requester.key, "requester") == [agreement["eventId"]]
    assert await listed("agreements", provider.key, "provider") == [agreement["eventId"]]
    assert await listed("agreements", stranger_key, "provider") == []
    mine = (await pclient.get("/api/agents/requests", headers=auth(requester.key))).json()["items"][0]
    assert (
        mine["agreementEventId"] == agreement["eventId"] and mine["parameters"] == '{"pages": 3, "to": "en"}'
    )
    assert (
        await pclient.get("/api/agents/requests", params={"role": "x"}, headers=auth(requester.key))
    ).status_code == 400
    assert (await pclient.get("/api/agents/agreements")).status_code == 401


# --- attestations -------------------------------------------------------------------------------------


async def test_reviews_signed_by_the_parties_one_verified_by_a_payment(
    pclient: httpx.AsyncClient, upstream: Upstream, party: Any
) -> None:
    provider, requester = await party(), await party()
    made = await deal(pclient, provider, requester, upstream.base_url)
    agreement = made["agreement"]["eventId"]
    proof = await pay_through(pclient, made["capability"]["l402Endpoint"] + "/translate")

    event = review(requester.secret, provider.pubkey, agreement, "5", proof.upper())
    posted = await pclient.post("/api/agents/attestations", json={"event": event})  # no API key: signed
    assert posted.status_code == 201, posted.text
    assert posted.json()["verified"] is True and posted.json()["proof"] == proof
    answer = review(provider.secret, requester.pubkey, agreement, "2", proof)
    posted = await pclient.post("/api/agents/attestations", json={"event": answer})
    assert (
        posted.status_code == 201 and posted.json()["verified"] is False
    )  # one payment, one verified review

    body = (await pclient.get("/api/agents/attestations", params={"pubkey": provider.pubkey})).json()
    assert (body["total"], body["averageRating"]) == (1, 5.0)
    [item] = body["items"]
    assert item == {
        "eventId": event["id"],
        "pubkey": requester.pubkey,
        "reviewerPubkey": requester.pubkey,
        "subjectPubkey": provider.pubkey,
        "rating": 5,
        "content": "fast and accurate",
        "agreementId": agreement,
        "proof": proof,
        "verified": True,
        "createdAt": item["createdAt"],
    }
    exported_review = by_id(await exported(pclient, event["created_at"], kinds="38403"), event["id"])
    assert exported_review == event  # stored as signed
    bad = await pclient.get("/api/agents/attestations", params={"pubkey": "xyz"})
    assert (bad.status_code, bad.json()["error"]) == (400, "invalid_pubkey")


async def test_refused_reviews_store_nothing(
    pclient: httpx.AsyncClient, upstream: Upstream, party: Any, db: Database
) -> None:
    provider, requester, outsider = await party(), await party(), await party()
    agreement = (await deal(pclient, provider, requester, upstream.base_url))["agreement"]["eventId"]
    good = review(requester.secret, provider.pubkey, agreement, proof=secrets.token_hex(32))
    forged = review(outsider.secret, provider.pubkey, agreement)
    cases: list[tuple[Any, int, str]] = [
        (review(requester.secret, provider.pubkey, agreement, "0"), 400, "invalid_rating"),
        (review(requester.secret, provider.pubkey, agreement, "6"), 400, "invalid_rating"),
        (review(requester.secret, provider.pubkey, agreement, "x"), 400, "invalid_rating"),
        (review(requester.secret, requester.pubkey, agreement), 400, "self_review"),
        (review(requester.secret, provider.pubkey, "cd" * 32), 404, "agreement_not_found"),
        ({**good, "content": "changed after signing"}, 400, "event_id_mismatch"),
        ({**good, "sig": forged["sig"]}, 401, "invalid_signature"),  # another key's signature
        ({**good, "sig": good["sig"][:-2]}, 401, "invalid_signature"),  # wrong length
        ({**good, "pubkey": "zz" * 32}, 400, "invalid_pubkey"),  # not hex
        (review(requester.secret, "ab" * 31, agreement), 400, "invalid_pubkey"),  # wrong length
        (review(requester.secret, provider.pubkey, agreement, proof="nothex"), 400, "invalid_proof"),
        (review(requester.secret, provider.pubkey, agreement, kind=1), 400, "wrong_kind"),
        (forged, 403, "not_a_party"),
        (review(requester.secret, outsider.pubkey, agreement), 400, "wrong_subject"),
    ]
    for event, status, code in cases:
        response = await pclient.post("/api/agents/attestations", json={"event": event})
        assert (response.status_code, response.json()["error"]) == (status, code), (code, response.text)
    unsigned = {  # what the MCP's publish_attestation sends
        "subjectPubkey": provider.pubkey,
        "agreementId": agreement,
        "rating": 5,
        "content": "great",
        "proof": None,
        "attestationId": f"att-{agreement[:16]}-{int(time.time())}",
    }
    response = await pclient.post("/api/agents/attestations", json=unsigned, headers=auth(requester.key))
    assert (response.status_code, response.json()["error"]) == (400, "signature_required")
    assert "own" in response.json()["message"]
    assert await count(db, Attestation, Attestation.agreement_event_id == agreement) == 0
    ids = [event["id"] for event, _, _ in cases if isinstance(event.get("id"), str)]
    assert await count(db, NostrEvent, NostrEvent.id.in_(ids)) == 0

    accepted = await pclient.post("/api/agents/attestations", json={"event": good})
    assert accepted.status_code == 201 and accepted.json()["verified"] is False  # a payment nobody made
    twice = review(requester.secret, provider.pubkey, agreement, "1")
    response = await pclient.post("/api/agents/attestations", json={"event": twice})
    assert (response.status_code, response.json()["error"]) == (409, "attestation_exists")
    assert await count(db, Attestation, Attestation.agreement_event_id == agreement) == 1


# --- export -------------------------------------------------------------------------------------------


async def test_export_pages_through_every_event_once_in_order(
    pclient: httpx.AsyncClient, upstream: Upstream, merchant: Any
) -> None:
    _, key = merchant
    since = int(time.time())
    mine = {(await publish(pclient, key, listing(upstream.base_url)))["eventId"] for _ in range(3)}
    seen: list[dict[str, Any]] = []
    url: str | None = f"/api/agents/events?since={since}&kinds=38400&limit=2"
    while url:
        page = (await pclient.get(url)).json()
        seen += page["events"]
        url = page["next"]
    assert mine <= {event["id"] for event in seen}
    assert len({event["id"] for event in seen}) == len(seen)
    assert [(e["created_at"], e["id"]) for e in seen] == sorted((e["created_at"], e["id"]) for e in seen)
    assert all(event["kind"] == 38400 and event["created_at"] >= since for event in seen)
    for params in ({"kinds": "x"}, {"kinds": "70000"}, {"since": -1}, {"after": "XYZ"}):
        assert (await pclient.get("/api/agents/events", params=params)).status_code == 400


# --- the published MCP client -------------------------------------------------------------------------


async def test_the_mcp_client_against_the_gateway(
    pclient: httpx.AsyncClient,
    proxy_gateway: Gateway,
    upstream: Upstream,
    party: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider, requester = await party(), await party()
    monkeypatch.setenv("LIGHTNING_ENABLE_API_URL", proxy_gateway.base_url)
    monkeypatch.setenv("LIGHTNING_ENABLE_API_KEY", provider.key)
    seller = LightningEnableApiClient()  # its API calls have no address guard: loopback is fine
    monkeypatch.setenv("LIGHTNING_ENABLE_API_KEY", requester.key)
    buyer = LightningEnableApiClient()
    word = "m" + secrets.token_hex(6)
    try:
        published = await seller.publish_capability(
            word, ["ai"], f"{word} summaries", 7, None, upstream.base_url, ["mcp"]
        )
        assert published["success"] is True, published
        proxy_id = published["l402Endpoint"].rsplit("/", 1)[1]
        found = await buyer.discover_capabilities("ai", ["mcp"], word, 10)
        assert found["success"] is True and found["total"] == 1, found
        [capability] = found["capabilities"]
        assert capability["eventId"] == published["eventId"] and capability["priceSats"] == 7
        assert capability["serviceId"] == word and capability["l402Endpoint"] == published["l402Endpoint"]

        asked = await buyer.request_service(published["eventId"], 10, '{"text": "bonjour"}')
        assert asked["success"] is True and asked["l402Endpoint"] == published["l402Endpoint"], asked
        refused = await buyer.request_service(published["eventId"], 10, "{nope")
        assert refused["success"] is False and "JSON" in refused["error"]

        agreement = (
            await pclient.post(
                "/api/agents/agreements",
                json={"requestEventId": asked["requestEventId"], "priceSats": 7},
                headers=auth(provider.key),
            )
        ).json()["eventId"]
        tried = await buyer.publish_attestation(provider.pubkey, agreement, 5, "great", None)
        assert tried["success"] is False and "own Nostr key" in tried["error"]
        event = review(requester.secret, provider.pubkey, agreement, "4")
        assert (await pclient.post("/api/agents/attestations", json={"event": event})).status_code == 201
        reputation = await buyer.get_attestations(provider.pubkey, 10)
        assert reputation["success"] is True
        assert [(a["reviewerPubkey"], a["rating"], a["agreementId"]) for a in reputation["attestations"]] == [
            (requester.pubkey, 4, agreement)
        ]

        removed = await seller.unpublish_capability(proxy_id, "done")
        assert removed == {"success": True, "proxyId": proxy_id, "retired": True, "alreadyRetired": False}
        assert (await seller.unpublish_capability(proxy_id, None))["alreadyRetired"] is True
        found = await buyer.discover_capabilities("ai", ["mcp"], word, 10)
        assert found == {"success": True, "capabilities": [], "total": 0}
    finally:
        await seller.close()
        await buyer.close()
