"""Fixtures of the Shopify tests: the fake Admin API on loopback and a gateway pointed at it."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway, free_port
from tests.helpers import auth
from tests.shopify.fake_shopify import FakeShopify
from tests.shopify.fake_store import Shop

_numbers = itertools.count(1)


@pytest.fixture(scope="session")
async def shopify() -> AsyncIterator[FakeShopify]:
    fake = FakeShopify(free_port())
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture(scope="module")
async def shop_gateway(module_gateway: Callable[..., Awaitable[Gateway]], shopify: FakeShopify) -> Gateway:
    return await module_gateway(
        shopify_api_base=f"{shopify.base_url}/shops/{{shop}}",
        shopify_timeout_seconds=1.0,
    )


@pytest.fixture
async def sclient(shop_gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=shop_gateway.base_url, timeout=30) as http:
        yield http


@pytest.fixture(autouse=True)
def _reset_faults(shopify: FakeShopify) -> None:
    shopify.reset()


def new_shop(shopify: FakeShopify, **kwargs: Any) -> tuple[Shop, str]:
    """A fresh fake shop with a static token; returns (shop, token)."""
    n = next(_numbers)
    token = f"shpat_token{n:06d}"
    kwargs.setdefault("access_token", token)
    shop = shopify.add_shop(f"store{n}-{free_port()}.myshopify.com", name=f"Store {n}", **kwargs)
    return shop, token


@pytest.fixture
def connect(
    sclient: httpx.AsyncClient, shopify: FakeShopify
) -> Callable[..., Awaitable[tuple[Shop, dict[str, Any]]]]:
    """Connect a new fake shop with two products to the merchant with ``key``."""

    async def make(key: str, *, products: bool = True, **fields: Any) -> tuple[Shop, dict[str, Any]]:
        shop, token = new_shop(shopify)
        if products:
            shop.add_product(
                "Coffee Beans",
                [
                    {"title": "12oz", "price": "18.99", "inventory": 5, "sku": "CB-12"},
                    {"title": "2lb", "price": "34.99", "inventory": 0},
                ],
                description="Single origin",
                image_url="https://cdn.example/beans.png",
            )
            shop.add_product("Mug", [{"title": "Default Title", "price": "12.00", "inventory": 3}])
        body = {
            "slug": shop.domain.split(".")[0],
            "shopDomain": shop.domain,
            "accessToken": token,
            "webhookSecret": "whsec_store_secret",
            "shipping": {
                "groups": [
                    {"name": "domestic", "countries": ["US"], "rateUsd": "5.99", "freeOverUsd": "50.00"},
                    {"name": "world", "countries": ["*"], "rateUsd": "15.00"},
                ]
            },
            **fields,
        }
        created = await sclient.post("/api/shopify/stores", json=body, headers=auth(key))
        assert created.status_code == 201, created.text
        return shop, created.json()

    return make


def variants(shop: Shop) -> dict[str, Any]:
    """title → variant of the shop's products ("Coffee Beans/12oz", "Mug/Default Title")."""
    return {f"{p.title}/{v.title}": v for p in shop.products for v in p.variants}
