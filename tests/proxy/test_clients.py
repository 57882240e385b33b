"""The published clients pay through the proxy: ``lightning-enable-mcp``'s fetch (what its
``access_l402_resource`` tool runs on a proxy URL) and ``l402-requests``, against a real gateway
and a real upstream on loopback."""

from __future__ import annotations

import functools
import logging

from l402_requests import AsyncL402Client, BudgetController

logging.getLogger().setLevel(logging.WARNING)  # the MCP package sets the root logger to INFO on import
import lightning_enable_mcp.l402_client as mcp  # noqa: E402
from lightning_enable_mcp.tools._ssrf_guard import is_blocked_ip  # noqa: E402

from tests.l402.test_clients import DevNodeWallet  # noqa: E402

FORECAST = {"endpointId": "forecast", "path": "/forecast/{city}", "httpMethod": "GET", "basePriceSats": 7}


async def test_the_mcp_client_pays_a_proxied_endpoint(proxy_gateway, merchant, make_proxy, monkeypatch):
    _, key = merchant
    proxy = await make_proxy(key, endpoints=[FORECAST])
    monkeypatch.setattr(  # its transport refuses loopback; the factory's is_blocked seam lets 127.0.0.1 through
        mcp,
        "build_ssrf_safe_async_transport",
        functools.partial(
            mcp.build_ssrf_safe_async_transport,
            is_blocked=lambda ip: False if ip.is_loopback else is_blocked_ip(ip),
        ),
    )
    wallet = DevNodeWallet(proxy_gateway.base_url)
    fetcher = mcp.L402Client(wallet=wallet)
    url = proxy_gateway.base_url + proxy["proxyUrl"] + "/forecast/lisbon?days=3"
    try:
        text, sats, receipt = await fetcher.fetch(url, max_sats=50)
        assert sats == 7 and '"path":"/forecast/lisbon"' in text and '"query":"days=3"' in text
        assert receipt and receipt.get("reference")
        head_text, _, _ = await fetcher.fetch(url, method="HEAD", max_sats=50)
        assert head_text == ""
    finally:
        await fetcher.close()
    assert len(wallet.paid) == 2  # this client keeps no tokens: each fetch pays (HEAD is priced as GET)


async def test_l402_requests_pays_once_and_reuses_its_token(proxy_gateway, merchant, make_proxy):
    _, key = merchant
    proxy = await make_proxy(key, endpoints=[FORECAST])
    wallet = DevNodeWallet(proxy_gateway.base_url)
    budget = BudgetController(max_sats_per_request=50, allowed_domains={"127.0.0.1"})
    base = proxy_gateway.base_url + proxy["proxyUrl"]
    async with AsyncL402Client(wallet=wallet, budget=budget, timeout=10, trust_env=False) as http:
        for _ in range(3):
            answer = await http.get(base + "/forecast/oslo")
            assert answer.status_code == 200, answer.text
            assert answer.json()["path"] == "/forecast/oslo"
    assert len(wallet.paid) == 1  # the cached L402 token opens the endpoint again
