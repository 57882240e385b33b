"""The gateway on a real backend protocol (phoenixd's, served by a fake on loopback): it starts
when the backend is down and answers 503 until it is back; a dropped settlement stream is
reconnected and what was settled meanwhile is found; a payment is credited once; failover moves
new invoices to the second backend and back; ``boltgate check-backend`` tells what is wrong."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from boltgate.lightning import bolt11
from boltgate.webhook.models import Event
from tests.conftest import free_port
from tests.helpers import auth
from tests.lightning.fakes.phoenixd import FakePhoenixd

BODY = {"amount": 0.00002, "currency": "BTC"}


@pytest.fixture
async def node() -> AsyncIterator[FakePhoenixd]:
    fake = FakePhoenixd()
    fake.port = free_port()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def second() -> AsyncIterator[FakePhoenixd]:
    fake = FakePhoenixd()
    fake.port = free_port()
    await fake.start()
    yield fake
    await fake.stop()


def url(fake: FakePhoenixd) -> str:
    return f"phoenixd://:{fake.password}@{fake.url_host}?timeout=1"


async def pay_status(
    http: httpx.AsyncClient, key: str, invoice_id: str, want: str, seconds: float = 10
) -> str:
    status = ""
    for _ in range(int(seconds / 0.1)):
        status = (await http.get(f"/api/payments/{invoice_id}", headers=auth(key))).json()["status"]
        if status == want:
            break
        await asyncio.sleep(0.1)
    return status


async def completed_events(db, invoice_id: str) -> int:
    async with db.reading() as session:
        found = await session.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.invoice_id == invoice_id, Event.type == "payment.completed")
        )
    return int(found or 0)


async def test_a_backend_down_at_start_gives_503s_until_it_is_back(temp_gateway, make_merchant, node):
    await node.set_fault("refused")
    gateway = await temp_gateway(lightning_url=url(node))
    _, key = await make_merchant()
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        assert (await http.get("/healthz")).status_code == 200  # the gateway runs
        ready = await http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["error"] == "lightning_backend_unavailable"
        assert ready.headers["Retry-After"]
        refused = await http.post("/api/payments", json={**BODY, "orderId": "down-1"}, headers=auth(key))
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == "lightning_backend_unavailable"
        assert refused.headers["Retry-After"] == "5"
        assert node.password not in refused.text
        assert (await http.get("/api/payments", headers=auth(key))).json()["total"] == 0  # nothing made

        await node.set_fault("ok")
        assert (await http.get("/readyz")).json()["lightning"] == "phoenixd"
        made = await http.post("/api/payments", json={**BODY, "orderId": "down-1"}, headers=auth(key))
        assert made.status_code == 201, made.text


async def test_a_backend_answering_nonsense_is_a_502_naming_it(temp_gateway, make_merchant, node):
    gateway = await temp_gateway(lightning_url=url(node))
    _, key = await make_merchant()
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        for fault, code in (
            ("wrong_amount", "lightning_backend_invalid"),
            ("garbage", "lightning_backend_invalid"),
        ):
            await node.set_fault(fault)
            answer = await http.post(
                "/api/payments", json={**BODY, "orderId": f"bad-{fault}"}, headers=auth(key)
            )
            assert answer.status_code == 502, answer.text
            assert answer.json()["error"] == code and "phoenixd" in answer.json()["detail"]
        await node.set_fault("ok")
        assert (await http.get("/api/payments", headers=auth(key))).json()["total"] == 0


async def test_a_dropped_stream_reconnects_and_finds_what_was_settled_meanwhile(
    temp_gateway, make_merchant, node, db
):
    gateway = await temp_gateway(lightning_url=url(node))
    _, key = await make_merchant()
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        first = (await http.post("/api/payments", json={**BODY, "orderId": "s-1"}, headers=auth(key))).json()
        second = (await http.post("/api/payments", json={**BODY, "orderId": "s-2"}, headers=auth(key))).json()
        await node.settle(bolt11.decode(first["lightningInvoice"]).payment_hash.hex())
        assert await pay_status(http, key, first["invoiceId"], "paid") == "paid"  # pushed

        await node.set_fault("refused")  # the stream drops
        await asyncio.sleep(0.3)
        await node.settle(bolt11.decode(second["lightningInvoice"]).payment_hash.hex())  # paid meanwhile
        await asyncio.sleep(0.5)
        assert (await http.get(f"/api/payments/{second['invoiceId']}", headers=auth(key))).json()[
            "status"
        ] == "unpaid"
        await node.set_fault("ok")
        assert await pay_status(http, key, second["invoiceId"], "paid", seconds=15) == "paid"
    # the stream, the catch-up and the reconciler all saw the first: it was credited once
    assert await completed_events(db, first["invoiceId"]) == 1
    assert await completed_events(db, second["invoiceId"]) == 1


async def test_failover_takes_new_invoices_while_the_first_backend_is_down(
    temp_gateway, make_merchant, node, second
):
    gateway = await temp_gateway(
        lightning_url=url(node), lightning_failover_url=url(second), lightning_failover_probe_seconds=0.5
    )
    _, key = await make_merchant()
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        ready = (await http.get("/readyz")).json()
        assert ready["failover"]["active"] == "primary"
        one = (await http.post("/api/payments", json={**BODY, "orderId": "f-1"}, headers=auth(key))).json()
        assert bolt11.decode(one["lightningInvoice"]).payee.hex() == node.node_id

        await node.set_fault("refused")
        two = await http.post("/api/payments", json={**BODY, "orderId": "f-2"}, headers=auth(key))
        assert two.status_code == 201, two.text  # no 503: the second backend took it
        two = two.json()
        assert bolt11.decode(two["lightningInvoice"]).payee.hex() == second.node_id
        ready = (await http.get("/readyz")).json()
        assert ready["failover"]["active"] == "secondary" and ready["nodePubkey"] == second.node_id
        await second.settle(bolt11.decode(two["lightningInvoice"]).payment_hash.hex())
        assert await pay_status(http, key, two["invoiceId"], "paid") == "paid"  # watched on both

        await node.set_fault("ok")
        await asyncio.sleep(0.6)
        three = (await http.post("/api/payments", json={**BODY, "orderId": "f-3"}, headers=auth(key))).json()
        assert bolt11.decode(three["lightningInvoice"]).payee.hex() == node.node_id  # back
        ready = (await http.get("/readyz")).json()
        assert ready["failover"] == {
            "active": "primary",
            "primary": "phoenixd",
            "secondary": "phoenixd",
            "switches": 1,
        }
        # the first invoice, made before the switch, is still found on the first backend
        await node.settle(bolt11.decode(one["lightningInvoice"]).payment_hash.hex())
        assert await pay_status(http, key, one["invoiceId"], "paid") == "paid"


def check_backend(tmp_path: Path, lightning_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "BOLTGATE_DATA_DIR": str(tmp_path / "data"),
        "BOLTGATE_LIGHTNING_URL": lightning_url,
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "boltgate", "check-backend"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_check_backend_prints_the_node_or_the_precise_error(tmp_path, node):
    ok = await asyncio.to_thread(check_backend, tmp_path, url(node))
    assert ok.returncode == 0, ok.stderr
    assert "backend: phoenixd" in ok.stdout and f"node: {node.node_id}" in ok.stdout
    assert "network: regtest" in ok.stdout and "status: ok" in ok.stdout
    assert ":***@" in ok.stdout and node.password not in ok.stdout + ok.stderr

    wrong_network = await asyncio.to_thread(check_backend, tmp_path, url(node), BOLTGATE_NETWORK="mainnet")
    assert wrong_network.returncode == 1
    assert "is on regtest but BOLTGATE_NETWORK is mainnet" in wrong_network.stdout

    wrong_password = url(node).replace(node.password, "nope" * 8)
    refused = await asyncio.to_thread(check_backend, tmp_path, wrong_password)
    assert refused.returncode == 1 and "refused" in refused.stdout and "nope" * 8 not in refused.stdout

    await node.set_fault("refused")
    down = await asyncio.to_thread(check_backend, tmp_path, url(node))
    assert down.returncode == 1 and "unreachable" in down.stdout

    malformed = await asyncio.to_thread(check_backend, tmp_path, "phoenixd://:sekret-pw@host:notaport")
    assert malformed.returncode == 2
    assert (
        "BOLTGATE_LIGHTNING_URL" in malformed.stderr
        and "sekret-pw" not in malformed.stderr + malformed.stdout
    )
