"""The CLI as an operator uses it, against real `boltgate serve` subprocesses.

Includes the recovery guarantee: a payment settled while the gateway is stopped is `paid` within
seconds of the next start (the start-up reconciler asks the node).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.helpers import auth

BOLTGATE = str(Path(sys.executable).with_name("boltgate"))


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    port = free_port()
    return {
        **os.environ,
        "BOLTGATE_DATA_DIR": str(tmp_path / "data"),
        "BOLTGATE_DATABASE_URL": database_url,
        "BOLTGATE_PORT": str(port),
        "BOLTGATE_LOG_LEVEL": "WARNING",
    }


def run(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([BOLTGATE, *args], env=env, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"boltgate {' '.join(args)} failed: {result.stderr}")
    return result


class Server:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.url = f"http://127.0.0.1:{env['BOLTGATE_PORT']}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = Path(env["BOLTGATE_DATA_DIR"]).parent / "serve.log"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([BOLTGATE, "serve"], env=self.env, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("boltgate serve did not come up")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


@pytest.fixture
def server(env: dict[str, str]) -> Iterator[Server]:
    srv = Server(env)
    yield srv
    srv.stop()


def test_merchant_create_prints_the_key_alone_on_the_last_line(env):
    result = run(env, "merchant", "create", "My Shop")
    last = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"le_live_[0-9A-Za-z]{40}", last)
    listing = run(env, "merchant", "list").stdout
    assert "My Shop" in listing


def test_merchant_create_rejects_a_blank_name(env):
    result = run(env, "merchant", "create", "   ", check=False)
    assert result.returncode == 2
    assert "name" in result.stderr


def test_payment_settled_while_stopped_is_paid_after_restart(env, server):
    key = run(env, "merchant", "create", "Restart Shop").stdout.strip().splitlines()[-1]
    server.start()
    created = httpx.post(
        server.url + "/api/payments",
        json={"orderId": "while-stopped", "amount": "25.00", "currency": "USD"},
        headers=auth(key),
    ).json()
    server.stop()

    paid = run(env, "dev", "pay", created["lightningInvoice"])
    preimage = re.search(r"preimage: ([0-9a-f]{64})", paid.stdout)
    assert preimage is not None
    assert hashlib.sha256(bytes.fromhex(preimage.group(1))).hexdigest() == created["paymentHash"]

    started = time.monotonic()
    server.start()
    status = None
    while time.monotonic() - started < 10:
        status = httpx.get(f"{server.url}/api/payments/{created['invoiceId']}", headers=auth(key)).json()[
            "status"
        ]
        if status == "paid":
            break
        time.sleep(0.1)
    assert status == "paid"
    assert time.monotonic() - started < 10

    again = run(env, "dev", "pay", created["paymentHash"], check=False)
    assert again.returncode == 1
    assert "already paid" in again.stderr


def test_dev_pay_rejects_garbage_and_unknown_hashes(env):
    assert run(env, "dev", "pay", "lnbc1garbage", check=False).returncode == 1
    unknown = run(env, "dev", "pay", "00" * 32, check=False)
    assert unknown.returncode == 1
    assert "unknown" in unknown.stderr


def test_dev_pay_is_refused_outside_dev_mode(env):
    prod = {**env, "BOLTGATE_MODE": "production", "BOLTGATE_SECRET_KEY": "s" * 40}
    result = run(prod, "dev", "pay", "00" * 32, check=False)
    assert result.returncode == 2


def test_key_create_and_revoke(env, server):
    created = run(env, "merchant", "create", "Keys Shop").stdout
    merchant_id = re.search(r"merchant: (mch_\w+)", created).group(1)
    second = run(env, "merchant", "key", "create", merchant_id, "--name", "ci").stdout.strip().splitlines()
    key_id = re.search(r"api key id: (key_\w+)", "\n".join(second)).group(1)
    key = second[-1]
    server.start()
    assert httpx.get(server.url + "/api/payments", headers=auth(key)).status_code == 200
    run(env, "merchant", "key", "revoke", merchant_id, key_id)
    deadline = time.monotonic() + 10  # other processes see a revocation within the key cache TTL
    while time.monotonic() < deadline:
        if httpx.get(server.url + "/api/payments", headers=auth(key)).status_code == 401:
            break
        time.sleep(0.2)
    assert httpx.get(server.url + "/api/payments", headers=auth(key)).status_code == 401
    assert run(env, "merchant", "key", "revoke", merchant_id, "key_nope", check=False).returncode == 2


REQUEST_ID = {"X-Request-Id": "req-query"}


def test_logs_are_json_with_request_ids_and_no_secrets(env):
    env = {**env, "BOLTGATE_LOG_LEVEL": "DEBUG", "BOLTGATE_ACCESS_LOG": "true"}
    key = run(env, "merchant", "create", "Log Shop").stdout.strip().splitlines()[-1]
    server = Server(env)
    server.start()
    try:
        httpx.post(
            server.url + "/api/payments",
            json={"orderId": "log", "amount": "1.00", "currency": "USD", "metadata": {"apiKey": key}},
            headers={**auth(key), "X-Request-Id": "req-log-1"},
        )
        httpx.get(server.url + "/api/payments", headers=auth(key[:-1] + "X"))
        # bearer secrets that travel in queries: a sign-in link's token, a buyer's claim token
        link = httpx.get(server.url + "/dashboard/login/link?token=signinSECRETsignin", headers=REQUEST_ID)
        claim = httpx.get(
            server.url + "/api/shopify/no-store/orders/o1?claimToken=claimSECRET", headers=REQUEST_ID
        )
    finally:
        server.stop()
    text = server.log.read_text()
    assert key not in text and key[:-1] not in text
    assert "SECRET" not in text
    logged = [json.loads(line) for line in text.splitlines() if '"req-query"' in line]
    assert {(line["path"], line["status"]) for line in logged if line.get("event") == "request"} == {
        ("/dashboard/login/link", link.status_code),
        ("/api/shopify/no-store/orders/o1", claim.status_code),
    }  # the requests were logged, by path only
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("event") == "request"]
    assert any(line.get("request_id") == "req-log-1" and line["status"] == 201 for line in access)
