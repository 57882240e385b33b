"""Text that merchants, their customers or API clients choose is shown as text: on the hosted
checkout page (seen by payers) and in the dashboard (seen by the merchant), markup in an order id,
a description, a customer's name, a key name, a webhook URL or a proxy name is escaped."""

from __future__ import annotations

import httpx

from tests.dashboard.conftest import new_payment
from tests.helpers import auth

HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)">'


def assert_escaped(page: httpx.Response) -> None:
    assert page.status_code in (200, 201), page.text[:300]
    assert "<script>alert" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


async def test_checkout_page_escapes_the_merchants_and_the_orders_text(client, merchant):
    _, key = merchant
    renamed = await client.patch("/api/merchant/me", json={"name": "Shop " + HOSTILE}, headers=auth(key))
    assert renamed.status_code == 200, renamed.text
    body = {"orderId": "esc-1", "amount": "1.00", "currency": "USD", "description": HOSTILE}
    payment = (await client.post("/api/payments", json=body, headers=auth(key))).json()
    assert_escaped(await client.get(f"/checkout/{payment['invoiceId']}"))


async def test_dashboard_pages_escape_what_they_show(dash, api, make_merchant):
    _, key = await make_merchant("Escapes")
    payment = await new_payment(
        api, key, "ord-" + HOSTILE, description=HOSTILE, customerName="Ada " + HOSTILE
    )
    named = await api.post("/api/merchant/keys", json={"name": "k " + HOSTILE}, headers=auth(key))
    assert named.status_code == 201, named.text
    proxy = await api.post(
        "/api/proxy",
        json={"name": "P " + HOSTILE, "targetBaseUrl": "https://api.example.com", "defaultPriceSats": 1},
        headers=auth(key),
    )
    assert proxy.status_code == 201, proxy.text
    hook = await api.post(
        "/api/webhooks",
        json={"url": "https://hooks.example/x", "description": HOSTILE},
        headers=auth(key),
    )
    assert hook.status_code == 201, hook.text
    client = await dash()
    await client.sign_in(key)
    assert_escaped(await client.get("/dashboard/payments"))
    assert_escaped(await client.get(f"/dashboard/payments/{payment['invoiceId']}"))
    assert_escaped(await client.get("/dashboard/keys"))
    assert_escaped(await client.get("/dashboard/proxies"))
    webhooks = await client.get("/dashboard/webhooks")
    assert webhooks.status_code == 200 and "<script>alert" not in webhooks.text
