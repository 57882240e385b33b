"""The operator settles a refund the backend cannot decide: ``boltgate refund show | list | settle``,
driven in-process (``boltgate.__main__.main`` in a thread, with its own event loop) against the
gateway's database, with refunds made through the HTTP API on a fake phoenixd.

What the backend says binds (succeeded is never failed, failed never completed); when it cannot say,
only ``--force`` decides; every outcome goes through the automatic check's conditional update, so
its webhook event is emitted once and a check racing the operator cannot apply a second outcome."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select, update

from boltgate.__main__ import main
from boltgate.kit.clock import utcnow
from boltgate.refund import operator
from boltgate.refund import tasks as refund_tasks
from boltgate.refund.models import Refund
from boltgate.webhook.models import Event
from tests.conftest import Gateway, free_port
from tests.helpers import auth
from tests.lightning.fakes.phoenixd import FakePhoenixd, Outgoing
from tests.refund import wallet
from tests.refund.conftest import invoice, paid_payment, refund_until

PAY_WAIT = 5


@dataclass
class Run:
    code: int
    out: str
    err: str

    def logged(self, event: str) -> list[dict[str, Any]]:
        found = []
        for line in self.err.splitlines():
            with contextlib.suppress(orjson.JSONDecodeError):
                record = orjson.loads(line)
                if isinstance(record, dict) and record.get("event") == event:
                    found.append(record)
        return found


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _main(argv: list[str], env: dict[str, str]) -> Run:
    """``boltgate ARGV`` as the operator runs it, its output captured (logging restored after:
    the command configures it for the whole process)."""
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    with _environment(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
        finally:
            root.handlers[:], root.level = handlers, level
    return Run(code, out.getvalue(), err.getvalue())


CLI = Callable[..., Awaitable[Run]]


@pytest.fixture(scope="module")
async def quiet_gateway(make_gateway: Callable[..., Awaitable[Gateway]], node: FakePhoenixd) -> Gateway:
    """A gateway whose own background check waits an hour: the tests decide when it runs."""
    return await make_gateway(
        lightning_url=f"phoenixd://:{node.password}@{node.url_host}?timeout=2&pay_timeout=1",
        refund_check_interval_seconds=3600,
        refund_pay_wait_seconds=PAY_WAIT,
    )


@pytest.fixture
async def api(quiet_gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=quiet_gateway.base_url, timeout=15) as client:
        yield client


@pytest.fixture
def cli(database_url: str, data_root: Path, node: FakePhoenixd) -> CLI:
    """Run ``boltgate …`` in a thread; ``reachable=False``: its backend is a port nobody listens on."""

    async def run(*argv: str, reachable: bool = True) -> Run:
        host = node.url_host if reachable else f"127.0.0.1:{free_port()}"
        env = {
            "BOLTGATE_DATABASE_URL": database_url,
            "BOLTGATE_DATA_DIR": str(data_root),
            "BOLTGATE_LIGHTNING_URL": f"phoenixd://:{node.password}@{host}?timeout=2&pay_timeout=1",
            "BOLTGATE_AUTO_MIGRATE": "false",
            "BOLTGATE_LOG_LEVEL": "INFO",
            "BOLTGATE_LOG_JSON": "true",
            "BOLTGATE_REFUND_PAY_WAIT_SECONDS": str(PAY_WAIT),
        }
        return await asyncio.to_thread(_main, list(argv), env)

    return run


async def _stuck(
    api: httpx.AsyncClient, key: str, node: FakePhoenixd, sats: int = 10_000
) -> tuple[dict[str, Any], dict[str, Any], Outgoing]:
    """A paid payment and a refund of ``sats`` whose payment stays in flight (the fake never
    answers it): pending, its amount reserved. The returned outgoing payment is what the node
    says of it; the tests change that."""
    payment = await paid_payment(api, key, node)
    await node.set_pay_outcome("pending")
    try:
        made = await api.post(
            "/api/refunds",
            json={
                "invoiceId": payment["invoiceId"],
                "amount": f"{sats / 1e8:.8f}",
                "currency": "BTC",
                "lightningInvoice": invoice(node, sats),
            },
            headers=auth(key),
        )
    finally:
        await node.set_pay_outcome("settled")
    assert made.status_code == 201 and made.json()["status"] == "pending", made.text
    refund = made.json()
    [sent] = [p for p in node.outgoing.values() if p.payment_hash == refund["paymentHash"]]
    return payment, refund, sent


def _node_says(node: FakePhoenixd, sent: Outgoing, status: str) -> None:
    if status == "unknown":
        del node.outgoing[sent.payment_id]
        return
    sent.status, sent.completed_at = status, int(time.time() * 1000)
    if status == "succeeded":
        sent.preimage = node.preimages[sent.payment_hash]


async def _events(db: Any, invoice_id: str, kind: str) -> int:
    async with db.reading() as session:
        count = await session.scalar(
            select(func.count()).select_from(Event).where(Event.invoice_id == invoice_id, Event.type == kind)
        )
    return int(count or 0)


async def _refund(api: httpx.AsyncClient, key: str, refund_id: str) -> dict[str, Any]:
    return (await api.get(f"/api/refunds/{refund_id}", headers=auth(key))).json()


async def test_show_and_list_a_stuck_refund(api, cli, make_merchant, node):
    _, key = await make_merchant()
    _, first, _ = await _stuck(api, key, node, 4_000)
    _, second, _ = await _stuck(api, key, node, 5_000)

    shown = await cli("refund", "show", first["refundId"])
    assert shown.code == 0, shown.err
    lines = dict(line.split(": ", 1) for line in shown.out.splitlines())
    assert lines["status"] == "pending"
    assert lines["amount"] == "0.00004000 BTC (4000 sats)"
    assert lines["destination"] == "lightning invoice"
    assert lines["payment hash"] == first["paymentHash"]
    assert lines["pay answer"] == "pending"
    assert lines["created"].endswith("s ago)")
    assert lines["backend says"] == "pending"
    assert (await cli("refund", "show", first["refundId"], reachable=False)).out.count(
        "backend says: unreachable"
    ) == 1

    listed = await cli("refund", "list", "--pending")
    assert listed.code == 0, listed.err
    ids = [line.split("\t")[0] for line in listed.out.splitlines()]
    assert ids.index(first["refundId"]) < ids.index(second["refundId"])  # oldest first
    assert all(line.split("\t")[1] == "pending" for line in listed.out.splitlines())
    recent = await cli("refund", "list", "--pending", "--older-than", "60")
    assert first["refundId"] not in recent.out

    missing = await cli("refund", "show", "ref_nosuchrefund")
    assert missing.code == 2 and "not found" in missing.err


async def test_settle_failed_when_the_backend_says_failed_frees_the_amount(
    api, cli, make_merchant, node, db, receiver
):
    _, key = await make_merchant()
    hook = receiver.behave("/operator-failed")
    made = await api.post("/api/webhooks", json={"url": hook, "events": ["refund.failed"]}, headers=auth(key))
    assert made.status_code == 201, made.text
    payment, refund, sent = await _stuck(api, key, node)
    more = await api.post(
        "/api/refunds",
        json={"invoiceId": payment["invoiceId"], "amount": "0.00000001", "currency": "BTC"},
        headers=auth(key),
    )
    assert more.status_code == 400 and more.json()["error"] == "refund_exceeds_remaining"
    _node_says(node, sent, "failed")

    done = await cli(
        "refund", "settle", refund["refundId"], "--failed", "--reason", "no route, checked on node"
    )
    assert done.code == 0, done.err
    assert "is now failed (the backend says failed)" in done.out
    [event] = done.logged("refund_settled_by_operator")
    assert (event["refund_id"], event["outcome"], event["forced"]) == (refund["refundId"], "failed", False)
    assert event["reason"] == "no route, checked on node"
    failed = await _refund(api, key, refund["refundId"])
    assert failed["status"] == "failed"
    assert failed["failureReason"] == "settled as failed by the operator: no route, checked on node"

    again = await cli("refund", "settle", refund["refundId"], "--failed", "--reason", "twice")
    assert again.code == 1 and "not pending" in again.err
    assert await _events(db, payment["invoiceId"], "refund.failed") == 1
    [delivered] = await receiver.wait_for("/operator-failed", 1)
    assert delivered.json["data"]["refundId"] == refund["refundId"]
    await asyncio.sleep(1.5)  # a poll of the webhook worker more: still one delivery
    assert len(receiver.received["/operator-failed"]) == 1

    # the amount is refundable again, all of it
    full = await api.post(
        "/api/refunds",
        json={
            "invoiceId": payment["invoiceId"],
            "amount": "0.0001",
            "currency": "BTC",
            "lightningInvoice": invoice(node, 10_000),
        },
        headers=auth(key),
    )
    assert full.status_code == 201 and full.json()["status"] == "completed", full.text


async def test_failed_is_refused_when_the_backend_says_succeeded(api, cli, make_merchant, node, db):
    _, key = await make_merchant()
    payment, refund, sent = await _stuck(api, key, node)
    _node_says(node, sent, "succeeded")

    for extra in ((), ("--force",)):
        refused = await cli("refund", "settle", refund["refundId"], "--failed", *extra, "--reason", "hm")
        assert refused.code == 1
        assert "refused" in refused.err and "succeeded" in refused.err
        assert refused.logged("refund_settled_by_operator") == []
    assert (await _refund(api, key, refund["refundId"]))["status"] == "pending"

    done = await cli("refund", "settle", refund["refundId"], "--completed", "--reason", "paid, node says so")
    assert done.code == 0, done.err
    completed = await _refund(api, key, refund["refundId"])
    assert completed["status"] == "completed"
    assert completed["preimage"] == sent.preimage  # the backend's proof
    assert completed["failureReason"] is None
    paid = (await api.get(f"/api/payments/{payment['invoiceId']}", headers=auth(key))).json()
    assert paid["status"] == "refunded"  # as the automatic check would have left it
    assert await _events(db, payment["invoiceId"], "refund.completed") == 1
    assert await _events(db, payment["invoiceId"], "payment.refunded") == 1


async def test_completed_is_refused_when_the_backend_says_failed(api, cli, make_merchant, node):
    _, key = await make_merchant()
    _, refund, sent = await _stuck(api, key, node)
    _node_says(node, sent, "failed")
    preimage = node.preimages[sent.payment_hash]
    refused = await cli(
        "refund",
        "settle",
        refund["refundId"],
        "--completed",
        "--force",
        "--preimage",
        preimage,
        "--reason",
        "x",
    )
    assert refused.code == 1 and "failed" in refused.err
    assert (await _refund(api, key, refund["refundId"]))["status"] == "pending"


async def test_an_unreachable_backend_needs_force(api, cli, make_merchant, node, db):
    _, key = await make_merchant()
    payment, refund, _ = await _stuck(api, key, node)

    refused = await cli(
        "refund", "settle", refund["refundId"], "--failed", "--reason", "gone", reachable=False
    )
    assert refused.code == 1
    assert "cannot be reached" in refused.err and "--force" in refused.err
    assert (await _refund(api, key, refund["refundId"]))["status"] == "pending"

    forced = await cli(
        "refund",
        "settle",
        refund["refundId"],
        "--failed",
        "--force",
        "--reason",
        "node wiped",
        reachable=False,
    )
    assert forced.code == 0, forced.err
    assert "on your word (--force)" in forced.out
    [event] = forced.logged("refund_settled_by_operator")
    assert (event["outcome"], event["forced"], event["backend"]) == ("failed", True, "unreachable")
    assert (await _refund(api, key, refund["refundId"]))["status"] == "failed"
    assert await _events(db, payment["invoiceId"], "refund.failed") == 1


async def test_no_forced_guess_while_the_pay_call_may_still_run(api, cli, make_merchant, node, db):
    """No pay answer recorded yet (the call may outlast the request's wait): --force is refused
    for ten minutes after the call began, then taken."""
    _, key = await make_merchant()
    _, refund, _ = await _stuck(api, key, node)

    async def began(seconds_ago: int) -> None:
        async with db.writing() as session:
            await session.execute(
                update(Refund)
                .where(Refund.id == refund["refundId"])
                .values(pay_outcome=None, updated_at=utcnow() - timedelta(seconds=seconds_ago))
            )

    args = ("refund", "settle", refund["refundId"], "--failed", "--force", "--reason", "node gone")
    await began(120)
    early = await cli(*args, reachable=False)
    assert early.code == 1 and "may still be in flight" in early.err, early.err
    assert (await _refund(api, key, refund["refundId"]))["status"] == "pending"
    await began(11 * 60)
    late = await cli(*args, reachable=False)
    assert late.code == 0, late.err
    assert (await _refund(api, key, refund["refundId"]))["status"] == "failed"


async def test_a_backend_with_no_record_needs_force_and_a_preimage_must_match(api, cli, make_merchant, node):
    _, key = await make_merchant()
    _, refund, sent = await _stuck(api, key, node)
    preimage = node.preimages[sent.payment_hash]
    _node_says(node, sent, "unknown")
    settle = ("refund", "settle", refund["refundId"], "--completed")

    unforced = await cli(*settle, "--preimage", preimage, "--reason", "paid")
    assert unforced.code == 1 and "no record" in unforced.err
    wrong = await cli(*settle, "--force", "--preimage", "ab" * 32, "--reason", "paid")
    assert wrong.code == 1 and "does not match" in wrong.err
    garbage = await cli(*settle, "--force", "--preimage", "xyz", "--reason", "paid")
    assert garbage.code == 2 and "64 hexadecimal" in garbage.err
    assert (await _refund(api, key, refund["refundId"]))["status"] == "pending"

    done = await cli(*settle, "--force", "--preimage", preimage.upper(), "--reason", "wallet shows it paid")
    assert done.code == 0, done.err
    completed = await _refund(api, key, refund["refundId"])
    assert (completed["status"], completed["preimage"]) == ("completed", preimage)
    assert hashlib.sha256(bytes.fromhex(completed["preimage"])).hexdigest() == completed["paymentHash"]
    assert preimage not in done.err  # a secret, even if a weak one: never logged


async def test_a_completed_refund_cannot_be_settled(api, cli, make_merchant, node):
    _, key = await make_merchant()
    payment = await paid_payment(api, key, node)
    made = await api.post(
        "/api/refunds",
        json={
            "invoiceId": payment["invoiceId"],
            "amount": "0.00002",
            "currency": "BTC",
            "lightningInvoice": invoice(node, 2_000),
        },
        headers=auth(key),
    )
    refund = made.json()
    assert refund["status"] == "completed", made.text
    for outcome in ("--failed", "--completed"):
        refused = await cli("refund", "settle", refund["refundId"], outcome, "--force", "--reason", "x")
        assert refused.code == 1 and "is completed, not pending" in refused.err
    assert (await _refund(api, key, refund["refundId"]))["status"] == "completed"


async def test_the_automatic_check_between_lookup_and_update_wins_alone(
    api, cli, make_merchant, node, db, quiet_gateway, monkeypatch
):
    """The check lands exactly between the operator's look-up and its update: the operator's
    conditional update then changes nothing, and says so."""
    _, key = await make_merchant()
    payment, refund, sent = await _stuck(api, key, node)
    preimage = node.preimages[sent.payment_hash]
    _node_says(node, sent, "failed")  # what the gateway's check sees; the operator's backend is down
    loop = asyncio.get_running_loop()
    asked = operator.ask_backend

    async def then_the_check(desk: operator.Desk, row: Any) -> operator.BackendView:
        view = await asked(desk, row)
        checked = asyncio.run_coroutine_threadsafe(refund_tasks.check_pending(quiet_gateway.ctx), loop)
        await asyncio.wrap_future(checked)
        return view

    monkeypatch.setattr(operator, "ask_backend", then_the_check)
    raced = await cli(
        "refund",
        "settle",
        refund["refundId"],
        "--completed",
        "--force",
        "--preimage",
        preimage,
        "--reason",
        "race",
        reachable=False,
    )
    assert raced.code == 1 and "became failed meanwhile" in raced.err
    assert raced.logged("refund_settled_by_operator") == []
    final = await _refund(api, key, refund["refundId"])
    assert (final["status"], final["preimage"]) == ("failed", None)
    assert await _events(db, payment["invoiceId"], "refund.failed") == 1
    assert await _events(db, payment["invoiceId"], "refund.completed") == 0


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.1, 0.2, 0.4, 1.0])
async def test_a_racing_check_and_operator_apply_exactly_one_outcome(
    api, cli, make_merchant, node, db, quiet_gateway, delay
):
    """The operator completes (on its word: its backend is down) while the gateway's check fails it
    (its backend says failed), started ``delay`` apart: one outcome, one event, whichever wins."""
    _, key = await make_merchant()
    payment, refund, sent = await _stuck(api, key, node)
    preimage = node.preimages[sent.payment_hash]
    _node_says(node, sent, "failed")

    async def check_later() -> None:
        await asyncio.sleep(delay)
        await refund_tasks.check_pending(quiet_gateway.ctx)

    settle = ("refund", "settle", refund["refundId"], "--completed", "--force", "--preimage", preimage)
    ran, _ = await asyncio.gather(cli(*settle, "--reason", "race", reachable=False), check_later())
    final = await _refund(api, key, refund["refundId"])
    completed = await _events(db, payment["invoiceId"], "refund.completed")
    failed = await _events(db, payment["invoiceId"], "refund.failed")
    assert completed + failed == 1
    if ran.code == 0:  # the operator won
        assert (final["status"], final["preimage"], completed) == ("completed", preimage, 1)
    else:
        assert ran.code == 1 and "refused" in ran.err, ran.err
        assert (final["status"], failed) == ("failed", 1)


async def test_an_unclaimed_claim_link_is_cancelled(api, cli, make_merchant, node, db):
    _, key = await make_merchant()
    payment = await paid_payment(api, key, node)
    made = await api.post(
        "/api/refunds",
        json={"invoiceId": payment["invoiceId"], "amount": "0.0001", "currency": "BTC"},
        headers=auth(key),
    )
    refund = made.json()
    assert (refund["status"], refund["type"]) == ("pending", "claim"), made.text
    status, request = await wallet.withdraw_request(refund["claim"]["lnurl"])
    assert status == 200 and request["tag"] == "withdrawRequest"

    shown = await cli("refund", "show", refund["refundId"])
    assert "claim link (unclaimed" in shown.out and "backend says: unclaimed" in shown.out
    completed = await cli("refund", "settle", refund["refundId"], "--completed", "--force", "--reason", "x")
    assert completed.code == 1 and "nobody claimed" in completed.err

    done = await cli(
        "refund", "settle", refund["refundId"], "--failed", "--reason", "customer got store credit"
    )
    assert done.code == 0, done.err
    failed = await _refund(api, key, refund["refundId"])
    assert failed["status"] == "failed"
    assert (
        failed["failureReason"] == "the claim link was cancelled by the operator: customer got store credit"
    )
    assert await _events(db, payment["invoiceId"], "refund.failed") == 1

    status, answer = await wallet.withdraw_request(refund["claim"]["lnurl"])
    assert (status, answer["status"], answer["error"]) == (410, "ERROR", "claim_expired")
    status, late = await wallet.submit(request["callback"], request["k1"], invoice(node, 10_000))
    assert (status, late["status"]) == (410, "ERROR")

    full = await api.post(
        "/api/refunds",
        json={
            "invoiceId": payment["invoiceId"],
            "amount": "0.0001",
            "currency": "BTC",
            "lightningInvoice": invoice(node, 10_000),
        },
        headers=auth(key),
    )
    assert full.status_code == 201 and full.json()["status"] == "completed", full.text


async def test_a_claim_being_paid_is_not_cancelled(api, cli, make_merchant, node):
    _, key = await make_merchant()
    payment = await paid_payment(api, key, node)
    made = await api.post(
        "/api/refunds",
        json={"invoiceId": payment["invoiceId"], "amount": "0.00005", "currency": "BTC"},
        headers=auth(key),
    )
    refund = made.json()
    status, request = await wallet.withdraw_request(refund["claim"]["lnurl"])
    assert status == 200
    await node.set_pay_outcome("pending")  # the wallet's invoice is in flight, and stays so
    status, ok = await wallet.submit(request["callback"], request["k1"], invoice(node, 5_000))
    assert (status, ok) == (200, {"status": "OK"})

    refused = await cli("refund", "settle", refund["refundId"], "--failed", "--reason", "cancel")
    assert refused.code == 1, refused.err  # being paid right now, or in flight when it looked
    assert "being paid right now" in refused.err or "still in flight" in refused.err
    claimed = await _refund(api, key, refund["refundId"])
    assert claimed["status"] == "pending" and claimed["paymentHash"]
    status, answer = await wallet.withdraw_request(refund["claim"]["lnurl"])
    assert (status, answer["error"]) == (410, "claim_used")

    # once the pay answer is in (pending), it is a payment like any other: the backend is asked
    await refund_until(api, key, refund["refundId"], "pending")
    for _ in range(50):
        shown = await cli("refund", "show", refund["refundId"])
        if "pay answer: pending" in shown.out:
            break
        await asyncio.sleep(0.1)
    assert "destination: claim link (claimed" in shown.out and "backend says: pending" in shown.out
    unforced = await cli("refund", "settle", refund["refundId"], "--failed", "--reason", "cancel")
    assert unforced.code == 1 and "still in flight" in unforced.err


def test_settle_needs_one_outcome_and_a_reason(capsys):
    for argv in (
        ["refund", "settle", "ref_x", "--reason", "r"],
        ["refund", "settle", "ref_x", "--failed", "--completed", "--reason", "r"],
        ["refund", "settle", "ref_x", "--failed"],
    ):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
    assert "usage" in capsys.readouterr().err
