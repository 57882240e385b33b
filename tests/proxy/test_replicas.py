"""Two replicas on one database: settings changed through one reach the other within
BOLTGATE_PROXY_CONFIG_CACHE_SECONDS, and usage counted by both adds up."""

from __future__ import annotations

import asyncio

import httpx

from tests.helpers import auth


async def test_changes_and_counts_cross_replicas(temp_gateway, merchant, upstream):
    _, key = merchant
    options = {"proxy_allow_networks": ["127.0.0.1"], "proxy_config_cache_seconds": 0.3}
    first = await temp_gateway(**options, proxy_usage_flush_seconds=0.1)
    second = await temp_gateway(**options, proxy_usage_flush_seconds=0.1)
    async with (
        httpx.AsyncClient(base_url=first.base_url, timeout=10) as a,
        httpx.AsyncClient(base_url=second.base_url, timeout=10) as b,
    ):
        made = await a.post(
            "/api/proxy",
            json={"name": "Shared", "targetBaseUrl": upstream.base_url, "defaultPriceSats": 0},
            headers=auth(key),
        )
        proxy_id, url = made.json()["proxyId"], made.json()["proxyUrl"] + "/x"
        assert (await b.get(url)).status_code == 200  # B caches "free"
        await a.put(f"/api/proxy/{proxy_id}", json={"defaultPriceSats": 3}, headers=auth(key))
        assert (await a.get(url)).status_code == 402  # at once where it was changed
        await asyncio.sleep(0.4)
        assert (await b.get(url)).status_code == 402  # after the cache time elsewhere
        await a.post(f"/api/proxy/{proxy_id}/unpublish", headers=auth(key))
        await asyncio.sleep(0.4)
        assert (await b.get(url)).status_code == 410
        await asyncio.sleep(0.3)  # B's counters reach the database
        stats = (await a.get(f"/api/proxy/{proxy_id}/stats", headers=auth(key))).json()
    assert stats["requests"] == 3 and stats["challenged"] == 2  # 410s of a retired proxy are not usage
