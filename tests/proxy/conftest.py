"""Fixtures of the proxy tests: a real upstream on loopback and a gateway allowed to reach it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway, free_port
from tests.helpers import auth
from tests.proxy.upstream import Upstream


@pytest.fixture(scope="session")
async def upstream() -> AsyncIterator[Upstream]:
    server = Upstream(free_port())
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="module")
async def proxy_gateway(module_gateway: Callable[..., Awaitable[Gateway]]) -> Gateway:
    # loopback allowed explicitly (the default refuses it); a short timeout for the slow-upstream test
    return await module_gateway(proxy_allow_networks=["127.0.0.1"], proxy_timeout_seconds=1.5)


@pytest.fixture
async def pclient(proxy_gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=proxy_gateway.base_url, timeout=30) as http:
        yield http


@pytest.fixture
def make_proxy(pclient: httpx.AsyncClient, upstream: Upstream) -> Callable[..., Awaitable[dict[str, Any]]]:
    async def make(key: str, *, endpoints: list[dict[str, Any]] = (), **fields: Any) -> dict[str, Any]:  # type: ignore[assignment]
        body = {"name": "Weather API", "targetBaseUrl": upstream.base_url, "defaultPriceSats": 5, **fields}
        created = await pclient.post("/api/proxy", json=body, headers=auth(key))
        assert created.status_code == 201, created.text
        proxy: dict[str, Any] = created.json()
        for endpoint in endpoints:
            added = await pclient.post(
                f"/api/proxy/{proxy['proxyId']}/manifest/endpoints", json=endpoint, headers=auth(key)
            )
            assert added.status_code == 201, added.text
        return proxy

    return make
