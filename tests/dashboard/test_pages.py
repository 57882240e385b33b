"""The dashboard's pages over real HTTP: payments (filters, search, paging), a payment's timeline
and redelivery, revenue charts, webhooks, API keys and proxies, each scoped to its merchant."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import update

from boltgate.kit.clock import utcnow
from boltgate.l402.models import Challenge
from boltgate.payment.models import Payment
from tests.dashboard.conftest import new_payment, pay
from tests.helpers import auth


def _orders(html: str) -> list[str]:
    return re.findall(r'<a href="/dashboard/payments/[^"]+">([^<]+)</a>', html)


async def test_payments_filter_search_and_page(dash, api, make_merchant, db):
    _, key = await make_merchant("Filters")
    made = [
        await new_payment(
            api,
            key,
            f"ord-{i:02d}",
            description="Blue mug" if i == 3 else "Tea",
            customerEmail=f"c{i}@x.example",
        )
        for i in range(27)
    ]
    await pay(api, made[5])
    async with db.writing() as session:  # ord-00 was made "last month"
        await session.execute(
            update(Payment)
            .where(Payment.id == made[0]["invoiceId"])
            .values(created_at=utcnow() - timedelta(days=40))
        )
    client = await dash()
    await client.sign_in(key)

    first = await client.get("/dashboard/payments")
    assert "27 payments" in first.text and len(_orders(first.text)) == 25
    assert _orders(first.text)[0] == "ord-26"  # newest first
    second = await client.get("/dashboard/payments?page=2")
    assert _orders(second.text) == ["ord-01", "ord-00"]
    assert 'id="prev"' in second.text and 'id="next"' not in second.text

    paid = await client.get("/dashboard/payments?status=paid")
    assert _orders(paid.text) == ["ord-05"]
    for query, expected in (
        ("blue MUG", ["ord-03"]),
        ("c7@x", ["ord-07"]),
        (made[9]["invoiceId"], ["ord-09"]),
        ("ord-1", None),
    ):
        found = _orders((await client.get("/dashboard/payments", params={"q": query})).text)
        assert found == (expected or [f"ord-{i}" for i in range(19, 9, -1)]), query
    assert _orders((await client.get("/dashboard/payments", params={"q": "%"})).text) == []  # no wildcards
    today = utcnow().strftime("%Y-%m-%d")
    ranged = await client.get("/dashboard/payments", params={"from": today, "to": today, "page": "2"})
    assert _orders(ranged.text) == ["ord-01"]
    old = await client.get(
        "/dashboard/payments", params={"to": (utcnow() - timedelta(days=30)).strftime("%Y-%m-%d")}
    )
    assert _orders(old.text) == ["ord-00"]

    for params in (
        {"status": "bogus"},
        {"from": "2026-13-01"},
        {"page": "0"},
        {"page": "x"},
        {"q": "x" * 201},
    ):
        bad = await client.get("/dashboard/payments", params=params)
        assert bad.status_code == 400 and 'id="filter-errors"' in bad.text, params


async def test_timeline_shows_events_deliveries_and_redelivers(dash, api, make_merchant, receiver):
    _, key = await make_merchant("Timeline")
    url = receiver.behave("/dash-timeline")
    hook = await api.post("/api/webhooks", json={"url": url}, headers=auth(key))
    assert hook.status_code == 201
    payment = await new_payment(api, key, "tl-1", description="Timeline mug")
    await pay(api, payment)
    received = await receiver.wait_for("/dash-timeline", 2)
    client = await dash()
    await client.sign_in(key)
    page = await client.get(f"/dashboard/payments/{payment['invoiceId']}")
    assert page.status_code == 200
    assert re.findall(r'class="event" data-type="([^"]+)"', page.text) == [
        "payment.created",
        "payment.completed",
    ]
    for _ in range(50):  # the attempts are recorded just after the receiver answers
        if page.text.count('data-status="succeeded"') == 2:
            break
        page = await client.get(f"/dashboard/payments/{payment['invoiceId']}")
    assert page.text.count('data-status="succeeded"') == 2 and url in page.text
    delivery_id = re.findall(r'class="delivery" data-id="([^"]+)"', page.text)[1]

    refused = await client.post(f"/dashboard/deliveries/{delivery_id}/redeliver", csrf="x")
    assert refused.status_code == 403
    response = await client.post(f"/dashboard/deliveries/{delivery_id}/redeliver")
    assert response.status_code == 303
    assert response.headers["location"] == f"/dashboard/payments/{payment['invoiceId']}?redelivered=1"
    again = await receiver.wait_for("/dash-timeline", 3)
    assert again[2].json["id"] == received[1].json["id"] and again[2].body == received[1].body
    after = await client.get(response.headers["location"])
    assert 'id="redelivered"' in after.text and after.text.count('class="delivery"') == 3


async def test_another_merchants_objects_are_404(dash, api, make_merchant, receiver):
    _, key_a = await make_merchant("A")
    _, key_b = await make_merchant("B")
    url = receiver.behave("/dash-isolation")
    hook = (await api.post("/api/webhooks", json={"url": url}, headers=auth(key_b))).json()
    payment_b = await new_payment(api, key_b, "secret-order", description="B's secret")
    deliveries = await receiver.wait_for("/dash-isolation", 1)
    assert deliveries
    listing = (await api.get(f"/api/webhooks/{hook['id']}/deliveries", headers=auth(key_b))).json()
    key_b_id = (await api.get("/api/merchant/keys", headers=auth(key_b))).json()["items"][0]["id"]
    a = await dash()
    await a.sign_in(key_a)
    page = await a.get(f"/dashboard/payments/{payment_b['invoiceId']}")
    assert page.status_code == 404 and "secret-order" not in page.text
    assert "secret-order" not in (await a.get("/dashboard/payments", params={"q": "secret"})).text
    assert (await a.post(f"/dashboard/deliveries/{listing['items'][0]['id']}/redeliver")).status_code == 404
    assert (await a.post(f"/dashboard/webhooks/{hook['id']}/delete")).status_code == 404
    assert (await a.post(f"/dashboard/webhooks/{hook['id']}/test")).status_code == 404
    assert (await a.post(f"/dashboard/keys/{key_b_id}/revoke")).status_code == 404
    assert (await api.get("/api/merchant/me", headers=auth(key_b))).status_code == 200  # B's key still works
    assert url not in (await a.get("/dashboard/webhooks")).text


async def test_keys_are_shown_once_and_revocable(dash, api, merchant):
    client = await dash()
    await client.sign_in(merchant[1])
    created = await client.post("/dashboard/keys", {"name": "shop backend", "test_mode": "on"})
    assert created.status_code == 201
    secret = re.search(r'id="key-value" readonly value="([^"]+)"', created.text).group(1)
    assert secret.startswith("le_test_")
    assert (await api.get("/api/merchant/me", headers=auth(secret))).status_code == 200
    listing = await client.get("/dashboard/keys")
    assert secret not in listing.text and "shop backend" in listing.text
    key_id = re.search(r'<tr data-id="([^"]+)" data-state="active">\s*<td>shop backend', listing.text).group(
        1
    )
    assert (await client.post(f"/dashboard/keys/{key_id}/revoke")).status_code == 303
    assert (await api.get("/api/merchant/me", headers=auth(secret))).status_code == 401
    assert f'data-id="{key_id}" data-state="revoked"' in (await client.get("/dashboard/keys")).text
    bad = await client.post("/dashboard/keys", {"name": "\x01"})
    assert bad.status_code == 400


async def test_webhooks_create_secret_once_test_and_delete(dash, api, merchant, receiver):
    client = await dash()
    await client.sign_in(merchant[1])
    url = receiver.behave("/dash-webhooks")
    created = await client.post(
        "/dashboard/webhooks", {"url": url, "description": "shop", "event:payment.completed": "on"}
    )
    assert created.status_code == 201
    secret = re.search(r'id="secret-value" readonly value="([^"]+)"', created.text).group(1)
    assert secret.startswith("whsec_")
    listing = await client.get("/dashboard/webhooks")
    assert secret not in listing.text and url in listing.text and "payment.completed" in listing.text
    endpoint_id = re.search(r'<tr data-id="(whe_[^"]+)"', listing.text).group(1)
    tested = await client.post(f"/dashboard/webhooks/{endpoint_id}/test")
    assert tested.status_code == 200 and 'data-success="1"' in tested.text
    ping = (await receiver.wait_for("/dash-webhooks", 1))[0]
    assert ping.json["event"] == "webhook.test"
    assert (await client.post("/dashboard/webhooks", {"url": "ftp://x"})).status_code == 400
    assert (await client.post(f"/dashboard/webhooks/{endpoint_id}/delete")).status_code == 303
    assert url not in (await client.get("/dashboard/webhooks")).text
    assert (await api.get(f"/api/webhooks/{endpoint_id}", headers=auth(merchant[1]))).status_code == 404


async def test_revenue_charts_and_proxies(dash, api, make_merchant, db):
    merchant_id, key = await make_merchant("Revenue")
    for order, amount in (("r1", "10.00"), ("r2", "2.50")):
        payment = await new_payment(api, key, order, amount=amount)
        await pay(api, payment)
    unpaid = await new_payment(api, key, "r3", amount="99.00")
    proxy = await api.post(
        "/api/proxy",
        json={"name": "Weather API", "targetBaseUrl": "https://weather.example", "defaultPriceSats": 21},
        headers=auth(key),
    )
    assert proxy.status_code == 201, proxy.text
    proxy_id = proxy.json()["proxyId"]
    now = utcnow()
    async with db.writing() as session:
        session.add(
            Challenge(
                payment_hash="ab" * 32,
                merchant_id=merchant_id,
                resource=f"proxy:{proxy_id}:*",
                amount_sats=21,
                invoice="lnbcrt1",
                token_id="t" * 64,
                caveats="",
                created_at=now,
                expires_at=now + timedelta(minutes=10),
                paid_at=now,
            )
        )
    client = await dash()
    await client.sign_in(key)
    page = await client.get("/dashboard/revenue")
    assert page.status_code == 200
    sats = (await api.get(f"/api/payments/{unpaid['invoiceId']}", headers=auth(key))).json()
    assert sats["status"] == "unpaid"
    eur = re.search(r'data-currency="EUR">([^<]+)<', page.text).group(1)
    assert eur == "12.50"  # the unpaid 99.00 is not revenue
    bars = re.findall(r'data-day="(\d{4}-\d{2}-\d{2})" data-value="([\d.]+)"', page.text)
    assert len(bars) == 60  # 30 days of sats, 30 of EUR
    assert bars[29][0] == now.strftime("%Y-%m-%d") and int(bars[29][1]) > 0
    assert bars[59] == (now.strftime("%Y-%m-%d"), "12.50") and {v for _, v in bars[30:59]} == {"0"}
    assert re.search(r'id="l402-total">21<', page.text) and "Weather API" in page.text
    assert "<svg" in page.text and "<script" not in page.text.split("</head>")[1]
    proxies = await client.get("/dashboard/proxies")
    assert f"{client.http.base_url}/l402/proxy/{proxy_id}".replace("http://", "") in proxies.text.replace(
        "http://", ""
    )
    assert re.search(r'class="revenue">21 sats', proxies.text)
