"""What the marketplace publishes reaches a real Nostr relay (nostr-relay 1.14 on loopback, the fixture of
``test_relays.py``): listings, their removal, requests, agreements and the reviewers' own reviews.

Events are sent after the commit, in the background, so each check polls the relay for a few seconds.
That relay honours a NIP-09 deletion by ``e`` tag (not by ``a``) and replaces an addressable event with
a strictly newer one, so after an unpublish it holds the deletion and the ``status=removed`` replacement
and no longer returns the original listing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from boltgate.agent import relays
from boltgate.db.engine import Database
from tests.agent.test_market import Party, add_agent, deal, exported, listing, review
from tests.agent.test_relays import relay_url
from tests.conftest import Gateway
from tests.helpers import auth
from tests.proxy.conftest import upstream
from tests.proxy.upstream import Upstream

pytestmark = pytest.mark.slow
FIXTURES = (relay_url, upstream)  # a real relay process and a real upstream, both on loopback


@pytest.fixture(scope="module")
async def relay_gateway(module_gateway: Callable[..., Awaitable[Gateway]], relay_url: str) -> Gateway:
    return await module_gateway(nostr_relays=[relay_url], proxy_allow_networks=["127.0.0.1"])


@pytest.fixture
async def rclient(relay_gateway: Gateway) -> Any:
    async with httpx.AsyncClient(base_url=relay_gateway.base_url, timeout=30) as http:
        yield http


async def held(relay: str, filters: dict[str, Any], expected: list[dict[str, Any]]) -> None:
    """Poll the relay (up to 5 s) until what it returns for ``filters`` is ``expected``."""
    deadline = time.monotonic() + 5
    while (found := await relays.fetch(relay, filters)) != expected:
        assert time.monotonic() < deadline, (filters, found, expected)
        await asyncio.sleep(0.1)


async def test_a_listing_and_its_removal_reach_the_relay(
    rclient: httpx.AsyncClient, relay_gateway: Gateway, relay_url: str, upstream: Upstream, merchant: Any
) -> None:
    _, key = merchant
    since = int(time.time())
    created = await rclient.post(
        "/api/agents/capabilities", json=listing(upstream.base_url), headers=auth(key)
    )
    assert created.status_code == 201, created.text
    out = created.json()
    events = await exported(rclient, since)
    original = next(event for event in events if event["id"] == out["eventId"])
    await held(relay_url, {"ids": [out["eventId"]]}, [original])  # the very event that was signed

    retired = await rclient.post(
        f"/api/proxy/{out['proxyId']}/unpublish", json={"reason": "bye"}, headers=auth(key)
    )
    assert retired.status_code == 200, retired.text
    events = await exported(rclient, since)
    deletion = next(e for e in events if e["kind"] == 5 and ["e", out["eventId"]] in e["tags"])
    replacement = next(
        e
        for e in events
        if e["kind"] == 38400 and e["id"] != out["eventId"] and e["tags"][0] == ["d", out["dTag"]]
    )
    await held(relay_url, {"ids": [deletion["id"]]}, [deletion])
    await held(relay_url, {"ids": [out["eventId"]]}, [])  # deleted (by its e tag) and replaced
    address = {"kinds": [38400], "authors": [relay_gateway.ctx.platform.pubkey], "#d": [out["dTag"]]}
    await held(relay_url, address, [replacement])
    assert replacement["tags"][-1] == ["status", "removed"]


async def test_requests_agreements_and_signed_reviews_reach_the_relay(
    rclient: httpx.AsyncClient, relay_url: str, upstream: Upstream, db: Database, make_merchant: Any
) -> None:
    parties = []
    for _ in range(2):
        merchant_id, key = await make_merchant()
        parties.append(Party(merchant_id, key, await add_agent(db, merchant_id)))
    provider, requester = parties
    since = int(time.time())
    made = await deal(rclient, provider, requester, upstream.base_url)
    signed = review(requester.secret, provider.pubkey, made["agreement"]["eventId"], "4")
    posted = await rclient.post("/api/agents/attestations", json={"event": signed})
    assert posted.status_code == 201, posted.text
    events = {event["id"]: event for event in await exported(rclient, since)}
    for event_id in (made["request"]["requestEventId"], made["agreement"]["eventId"], signed["id"]):
        await held(relay_url, {"ids": [event_id]}, [events[event_id]])
