"""Deliveries end to end: a payment's events reach a real receiver on loopback, signed, retried
only when worth it, in order per endpoint, with every attempt on record."""

from __future__ import annotations

import asyncio
import time

import httpx
from standardwebhooks.webhooks import Webhook

from tests.helpers import auth


async def add_endpoint(client, key, url, **extra):
    response = await client.post("/api/webhooks", json={"url": url, **extra}, headers=auth(key))
    assert response.status_code == 201, response.text
    return response.json()


async def new_payment(client, key, order_id, amount="25.00"):
    response = await client.post(
        "/api/payments",
        json={"orderId": order_id, "amount": amount, "currency": "USD", "metadata": {"cart": "7"}},
        headers=auth(key),
    )
    assert response.status_code == 201, response.text
    return response.json()


async def settle(client, invoice_id):
    response = await client.post(f"/api/dev/payments/{invoice_id}/settle")
    assert response.status_code == 200, response.text


async def deliveries(client, key, endpoint_id, **params):
    response = await client.get(f"/api/webhooks/{endpoint_id}/deliveries", params=params, headers=auth(key))
    assert response.status_code == 200, response.text
    return response.json()


async def eventually(probe, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


async def test_created_and_completed_reach_the_receiver_signed(client, merchant, receiver):
    _, key = merchant
    endpoint = await add_endpoint(client, key, receiver.behave("/flow"))
    payment = await new_payment(client, key, "flow-1")
    await settle(client, payment["invoiceId"])
    got = await receiver.wait_for("/flow", 2)
    bodies = [g.json for g in got]
    assert [b["event"] for b in bodies] == ["payment.created", "payment.completed"]
    completed = bodies[1]
    assert completed["id"].startswith("evt_") and completed["timestamp"].endswith("Z")
    assert completed["data"] == {
        "invoiceId": payment["invoiceId"],
        "orderId": "flow-1",
        "status": "paid",
        "amount": 25,
        "currency": "USD",
        "amountSats": payment["amountSats"],
        "paidAt": completed["data"]["paidAt"],
        "metadata": {"cart": "7"},
    }
    for g in got:
        Webhook(endpoint["secret"]).verify(g.body, g.headers)
        assert g.headers["webhook-id"] == g.json["id"]
        assert g.headers["content-type"] == "application/json"
    log = await eventually(lambda: _all_succeeded(client, key, endpoint["id"], 2))
    assert log, "deliveries were not recorded as succeeded"


async def _all_succeeded(client, key, endpoint_id, count):
    page = await deliveries(client, key, endpoint_id)
    done = [d for d in page["items"] if d["status"] == "succeeded"]
    return page if len(done) == count else None


async def test_event_filter(client, merchant, receiver):
    _, key = merchant
    await add_endpoint(client, key, receiver.behave("/only-completed"), events=["payment.completed"])
    payment = await new_payment(client, key, "filter-1")
    await settle(client, payment["invoiceId"])
    got = await receiver.wait_for("/only-completed", 1)
    await asyncio.sleep(0.3)
    assert [g.json["event"] for g in receiver.received["/only-completed"]] == ["payment.completed"]
    assert got[0].json["data"]["invoiceId"] == payment["invoiceId"]


async def test_retry_on_5xx_keeps_the_id_and_the_body(client, merchant, receiver):
    _, key = merchant
    endpoint = await add_endpoint(
        client, key, receiver.behave("/flaky", statuses=[503]), events=["payment.created"]
    )
    await new_payment(client, key, "flaky-1")
    got = await receiver.wait_for("/flaky", 2, timeout=20)  # first retry after ~5 s
    assert got[0].body == got[1].body and got[0].headers["webhook-id"] == got[1].headers["webhook-id"]
    page = await eventually(lambda: _all_succeeded(client, key, endpoint["id"], 1))
    attempts = page["items"][0]["attemptLog"]
    assert [a["statusCode"] for a in attempts] == [503, 200]
    assert page["items"][0]["attempts"] == 2


async def test_4xx_and_redirects_are_not_retried_and_redelivery_sends_the_same_event(
    client, merchant, receiver
):
    _, key = merchant
    rejected = await add_endpoint(
        client, key, receiver.behave("/reject", statuses=[400]), events=["payment.created"]
    )
    moved = await add_endpoint(
        client, key, receiver.behave("/moved", redirect=True), events=["payment.created"]
    )
    await new_payment(client, key, "reject-1")
    await receiver.wait_for("/reject", 1)
    await receiver.wait_for("/moved", 1)

    async def failed(endpoint_id):
        page = await deliveries(client, key, endpoint_id, status="failed")
        return page["items"] if page["total"] == 1 else None

    rejected_log = await eventually(lambda: failed(rejected["id"]))
    assert rejected_log[0]["attempts"] == 1 and rejected_log[0]["lastStatusCode"] == 400
    moved_log = await eventually(lambda: failed(moved["id"]))
    assert moved_log[0]["lastStatusCode"] == 307 and "redirect" in moved_log[0]["lastError"]
    assert "/elsewhere" not in receiver.received

    again = await client.post(
        f"/api/webhooks/deliveries/{rejected_log[0]['id']}/redeliver", headers=auth(key)
    )
    assert again.status_code == 202
    got = await receiver.wait_for("/reject", 2)
    assert got[1].json["id"] == got[0].json["id"] and got[1].body == got[0].body
    assert (
        await client.post("/api/webhooks/deliveries/dlv_nope/redeliver", headers=auth(key))
    ).status_code == 404


async def test_order_is_kept_per_endpoint(client, merchant, receiver):
    _, key = merchant
    await add_endpoint(client, key, receiver.behave("/ordered", statuses=[500]), events=["payment.created"])
    for i in range(5):
        await new_payment(client, key, f"ordered-{i}")
    got = await receiver.wait_for("/ordered", 6, timeout=20)
    orders = [g.json["data"]["orderId"] for g in got]
    assert orders == ["ordered-0", "ordered-0", "ordered-1", "ordered-2", "ordered-3", "ordered-4"]


async def test_hanging_and_huge_receivers_do_not_hold_up_others(client, merchant, receiver):
    _, key = merchant
    hang = await add_endpoint(client, key, receiver.behave("/hang", delay=30), events=["payment.created"])
    huge = await add_endpoint(client, key, receiver.behave("/huge", huge=True), events=["payment.created"])
    await add_endpoint(client, key, receiver.behave("/healthy"), events=["payment.created"])
    started = time.monotonic()
    for i in range(3):
        await new_payment(client, key, f"isolation-{i}")
    await receiver.wait_for("/healthy", 3, timeout=10)
    assert time.monotonic() - started < 5  # not behind the hanging receiver

    async def huge_done():
        page = await deliveries(client, key, huge["id"], status="succeeded")
        return page if page["total"] >= 1 else None

    page = await eventually(huge_done)
    assert len(page["items"][0]["attemptLog"][0]["responseBody"] or "") <= 1024

    async def hang_retrying():
        page = await deliveries(client, key, hang["id"])
        head = [d for d in page["items"] if d["attempts"] >= 1]
        return head if head else None

    head = await eventually(hang_retrying, timeout=15)
    assert head[0]["status"] == "pending" and "timed out" in head[0]["lastError"]


async def test_endpoint_is_disabled_after_consecutive_failed_events(client, make_merchant, receiver):
    _, key = await make_merchant("Disable")
    dead = await add_endpoint(
        client, key, receiver.behave("/dead", statuses=[410] * 20), events=["payment.created"]
    )
    watcher = await add_endpoint(
        client, key, receiver.behave("/watcher"), events=["webhook.endpoint_disabled"]
    )
    for i in range(6):
        await new_payment(client, key, f"dead-{i}")
    got = await receiver.wait_for("/watcher", 1, timeout=15)
    assert got[0].json["event"] == "webhook.endpoint_disabled"
    assert got[0].json["data"]["endpointId"] == dead["id"]
    Webhook(watcher["secret"]).verify(got[0].body, got[0].headers)
    shown = (await client.get(f"/api/webhooks/{dead['id']}", headers=auth(key))).json()
    assert shown["enabled"] is False and shown["consecutiveFailures"] == 5 and shown["disabledReason"]
    assert len(receiver.received["/dead"]) == 5  # the sixth is held, not sent

    receiver.behave("/dead")  # fixed: answers 200 again
    again = await client.put(f"/api/webhooks/{dead['id']}", json={"enabled": True}, headers=auth(key))
    assert again.json()["consecutiveFailures"] == 0
    got = await receiver.wait_for("/dead", 6)
    assert got[5].json["data"]["orderId"] == "dead-5"


async def test_private_addresses_are_refused_when_not_allowed(make_gateway, merchant, receiver):
    """Checked when connecting: ``localhost`` passes URL validation, then resolves to 127.0.0.1."""
    gateway = await make_gateway(webhook_allow_private=False, run_workers=False)
    _, key = merchant
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as client:
        url = receiver.behave("/private").replace("127.0.0.1", "localhost")
        endpoint = await add_endpoint(client, key, url)
        ping = (await client.post(f"/api/webhooks/{endpoint['id']}/test", headers=auth(key))).json()
    assert ping["success"] is False and "non-public address" in ping["error"]
    assert "/private" not in receiver.received
