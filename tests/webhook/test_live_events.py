"""Live events over Server-Sent Events: the merchant's stream and the public checkout stream."""

from __future__ import annotations

import asyncio

import httpx
import orjson

from tests.helpers import auth
from tests.webhook.test_delivery import new_payment, settle


async def read_events(response, count, until=None):
    """SSE events of a streaming response as (event, data) pairs: ``count`` of them, or up to the
    first for which ``until(event, data)`` holds."""
    events, event, data = [], None, None
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = orjson.loads(line[6:])
        elif line == "" and event is not None:
            events.append((event, data))
            event = data = None
            if len(events) == count or (until is not None and until(*events[-1])):
                return events
    return events


async def test_merchant_stream_shows_the_state_then_the_payment(client, merchant):
    _, key = merchant
    payment = await new_payment(client, key, "sse-1")
    async with client.stream("GET", f"/api/payments/{payment['invoiceId']}/events", headers=auth(key)) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        reader = asyncio.create_task(read_events(r, 10, until=lambda e, _d: e == "payment.completed"))
        await asyncio.sleep(0.2)
        await settle(client, payment["invoiceId"])
        events = await asyncio.wait_for(reader, 5)
    assert events[0][0] == "payment" and events[0][1]["status"] == "unpaid"
    # the created event may still be on its way when the stream starts; then the completion
    assert [e for e, _ in events[1:]] in (["payment.completed"], ["payment.created", "payment.completed"])
    assert events[-1][1]["data"]["status"] == "paid"


async def test_public_checkout_stream_and_status(client, merchant):
    _, key = merchant
    payment = await new_payment(client, key, "sse-2")
    status = await client.get(f"/checkout/{payment['invoiceId']}/status")
    assert status.status_code == 200
    assert status.json() == {
        "invoiceId": payment["invoiceId"],
        "status": "unpaid",
        "amount": 25.0,
        "currency": "USD",
        "lightningInvoice": payment["lightningInvoice"],
        "expiresAt": payment["expiresAt"],
        "isDemo": True,
        "satsAmount": payment["amountSats"],
    }
    async with client.stream("GET", f"/checkout/{payment['invoiceId']}/events") as r:
        reader = asyncio.create_task(read_events(r, 10, until=lambda _e, d: d["status"] == "paid"))
        await asyncio.sleep(0.2)
        await settle(client, payment["invoiceId"])
        events = await asyncio.wait_for(reader, 5)
    assert events[0][1]["status"] == "unpaid" and events[-1][1]["status"] == "paid"
    assert "metadata" not in events[1][1]  # the public stream shows only what the payer sees


async def test_unknown_or_foreign_invoices_get_404_not_a_stream(client, make_merchant):
    _, key_a = await make_merchant("A")
    _, key_b = await make_merchant("B")
    payment = await new_payment(client, key_a, "sse-3")
    foreign = await client.get(f"/api/payments/{payment['invoiceId']}/events", headers=auth(key_b))
    assert foreign.status_code == 404 and foreign.json()["error"] == "payment_not_found"
    assert (await client.get("/checkout/inv_nope/events")).status_code == 404
    assert (await client.get("/checkout/inv_nope/status")).status_code == 404
    assert (await client.get(f"/api/payments/{payment['invoiceId']}/events")).status_code == 401


async def test_a_stream_hears_events_committed_by_another_process(make_gateway, client, merchant):
    """The stream is served by a gateway without workers; the settlement is applied by another
    gateway's watcher: LISTEN/NOTIFY on PostgreSQL, the events table's poll on SQLite."""
    import httpx

    _, key = merchant
    quiet = await make_gateway(run_workers=False)
    payment = await new_payment(client, key, "sse-cross")
    async with (
        httpx.AsyncClient(base_url=quiet.base_url, timeout=10) as other,
        other.stream("GET", f"/checkout/{payment['invoiceId']}/events") as r,
    ):
        reader = asyncio.create_task(read_events(r, 10, until=lambda _e, d: d["status"] == "paid"))
        await asyncio.sleep(0.3)
        await settle(client, payment["invoiceId"])
        events = await asyncio.wait_for(reader, 5)
    assert events[-1][1]["status"] == "paid"


async def test_open_streams_are_capped_per_address_and_per_merchant(make_gateway, make_merchant):
    """A stream holds its connection: one past the cap is 429 before anything is streamed, and
    a closed stream gives its slot back, however it was closed."""
    gateway = await make_gateway(max_streams_per_address=2, max_streams_per_merchant=2)
    _, key = await make_merchant()
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        invoice = (await new_payment(http, key, "cap-1"))["invoiceId"]
        public = f"/checkout/{invoice}/events"
        async with http.stream("GET", public) as one, http.stream("GET", public) as two:
            assert one.status_code == two.status_code == 200
            third = await http.get(public)
            assert third.status_code == 429 and third.json()["error"] == "too_many_streams"
            assert third.headers["retry-after"] == "5"
            # the merchant's streams are counted apart, per merchant
            private = f"/api/payments/{invoice}/events"
            async with (
                http.stream("GET", private, headers=auth(key)) as a,
                http.stream("GET", private, headers=auth(key)) as b,
            ):
                assert a.status_code == b.status_code == 200
                refused = await http.get(private, headers=auth(key))
                assert refused.status_code == 429 and refused.json()["error"] == "too_many_streams"
            # the page's polling route is not a stream: not counted
            assert (await http.get(f"/checkout/{invoice}/status")).status_code == 200
        for _ in range(50):  # the server sees the clients go within a moment
            async with http.stream("GET", public) as again:
                if again.status_code == 200:
                    break
            await asyncio.sleep(0.1)
        assert again.status_code == 200
        assert (await http.get(f"/checkout/nonexistent{invoice}/events")).status_code == 404
    assert await open_streams_after_a_while(gateway) == {}


async def open_streams_after_a_while(gateway, seconds=5.0):
    """The open streams the gateway counts, once they are all given back or ``seconds`` passed."""
    streams = gateway.app.state.ctx.streams
    for _ in range(int(seconds * 10)):
        if not streams.open:
            break
        await asyncio.sleep(0.1)
    return dict(streams.open)
