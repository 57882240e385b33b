"""The Shopify stand-in of ``bench/shopify.py``: the test suite's fake Admin GraphQL server
(``tests/shopify/fake_shopify.py``) in a process of its own, with one shop of 20 products.

    python bench/shopify_fake.py <port> <shop domain> <access token>
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.shopify.fake_shopify import FakeShopify


async def main(port: int, domain: str, token: str) -> None:
    fake = FakeShopify(port)
    shop = fake.add_shop(domain, name="Bench Store", access_token=token)
    shop.maximum_available = shop.currently_available = 10**9  # the bucket never throttles the bench
    shop.restore_rate = 10**9
    for n in range(20):
        shop.add_product(f"Product {n}", [{"title": "Default", "price": f"{n + 5}.00", "inventory": 10**9}])
    await fake.start()
    print("ready", flush=True)
    while True:
        await asyncio.sleep(3600)
        fake.requests.clear()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
