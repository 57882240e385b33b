"""An agent buys from a store with a published auto-paying L402 client: its POST to the checkout
gets the 402, the client pays the invoice and retries with its token, and the retry answers the
paid order with its claim token; the claim then creates the Shopify order."""

from __future__ import annotations

from l402_requests import AsyncL402Client, BudgetController

from tests.l402.test_clients import DevNodeWallet
from tests.shopify.conftest import variants
from tests.shopify.test_flow import claim


async def test_l402_requests_buys_and_claims(shop_gateway, sclient, merchant, connect, shopify):
    _, key = merchant
    shop, store = await connect(key)
    mug = variants(shop)["Mug/Default Title"]
    wallet = DevNodeWallet(shop_gateway.base_url)
    budget = BudgetController(
        max_sats_per_request=100_000,
        max_sats_per_hour=100_000,
        max_sats_per_day=100_000,
        allowed_domains={"127.0.0.1"},
    )
    url = f"{shop_gateway.base_url}/api/shopify/{store['slug']}/checkout"
    async with AsyncL402Client(wallet=wallet, budget=budget, timeout=10, trust_env=False) as http:
        answer = await http.post(url, json={"items": [{"variantId": mug.legacy_resource_id, "quantity": 2}]})
    assert answer.status_code == 200, answer.text
    order = answer.json()
    assert (
        order["status"] == "paid" and order["totalUsd"] == 29.99 and order["paidSats"] == order["amountSats"]
    )
    assert len(wallet.paid) == 1
    claimed = await claim(sclient, store["slug"], order["claimToken"])
    assert claimed.status_code == 200, claimed.text
    [created] = shop.orders
    assert (
        created.input["sourceIdentifier"] == order["orderId"]
        and created.input["lineItems"][0]["quantity"] == 2
    )
