"""A real LNbits (from PyPI, pinned) on 127.0.0.1 for the tests, with its FakeWallet funding source.

Not a fake: the tests talk to LNbits itself. It is installed once into its own virtualenv under
``bench/.peers/`` (git-ignored, shared with ``bench/payments.py``, which pins the same version:
that venv is reused when its version matches), then started once per test process on a free port
with a data folder of its own, and stopped when the process exits.

It runs headless and offline: FakeWallet (LNbits issues real signed ``lnbc`` invoices with a key of
its own and settles those paid from another wallet of the same LNbits), rate limits raised,
exchange-rate providers, price aggregator and extension manifests off. The admin settings are on
(``LNBITS_ADMIN_UI=true``) only so that a super user exists: the test finishes LNbits' first-install
step with a password and, as that super user, credits the customer's wallet through LNbits' own
``PUT /users/api/v1/balance``. A customer "pays" an invoice as on any LNbits: their wallet pays it
(``POST /api/v1/payments`` with ``out: true``), LNbits settles it internally and pushes the
settlement on the merchant wallet's websocket.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import fcntl
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from boltgate.lightning import bolt11
from tests.lightning.fakes.faulty_proxy import Request, Response

LNBITS_VERSION = "1.6.2"
LOCK = Path(__file__).resolve().parents[1] / "lnbits-requirements.lock"  # lnbits, bitstring<4.3 and all
ROOT = Path(__file__).resolve().parents[3]
PEERS = ROOT / "bench" / ".peers"  # git-ignored
OWN_VENV = PEERS / f"lnbits-{LNBITS_VERSION}-venv"
START_TIMEOUT = 90.0
CUSTOMER_SATS = 10_000_000


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def installed_version(venv: Path) -> str | None:
    if not _python(venv).exists():
        return None
    probe = "import importlib.metadata as m, httptools; print(m.version('lnbits'))"
    done = subprocess.run([_python(venv), "-I", "-c", probe], capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def _lock_digest() -> str:
    return hashlib.sha256(LOCK.read_bytes()).hexdigest()


def ensure_lnbits() -> Path:
    """The Python of a venv holding LNbits and every dependency pinned by ``LOCK``, installed on
    first use (~1 min) and again whenever the lock changes (a stamp holds the lock's sha256)."""
    stamp = OWN_VENV / ".lock-sha256"
    want = _lock_digest()
    if stamp.exists() and stamp.read_text().strip() == want and installed_version(OWN_VENV) == LNBITS_VERSION:
        return _python(OWN_VENV)
    PEERS.mkdir(parents=True, exist_ok=True)
    with (PEERS / ".lnbits-install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test process may be installing it right now
        if not (stamp.exists() and stamp.read_text().strip() == want):
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(OWN_VENV)], check=True)
            pip = [str(_python(OWN_VENV)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
            subprocess.run([*pip, "--no-deps", "-r", str(LOCK)], check=True)
            stamp.write_text(want)
    return _python(OWN_VENV)


def _site_packages(python: Path) -> Path:
    # find_spec, not import: importing lnbits writes into the current directory
    probe = (
        "import importlib.util as u, pathlib; print(pathlib.Path(u.find_spec('lnbits').origin).parent.parent)"
    )
    done = subprocess.run([python, "-I", "-c", probe], capture_output=True, text=True, check=True)
    return Path(done.stdout.strip())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Wallet:
    id: str
    adminkey: str = field(repr=False)
    inkey: str = field(repr=False)


class LNbitsServer:
    """One LNbits process; :meth:`start` returns once it answers and the super user is set up."""

    def __init__(self) -> None:
        self.port = 0
        # LNbits writes its few hundred settings one commit each on a fresh install: on tmpfs the
        # fsyncs cost nothing (~2 s to start instead of ~8 s on a busy disk)
        shm = Path("/dev/shm")
        fast = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
        self.data = Path(tempfile.mkdtemp(prefix="boltgate-lnbits-", dir=fast))
        self.token = ""  # the super user's access token
        self.customer: Wallet | None = None
        self.start_seconds = 0.0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LNBITS_")}
        env.update(
            {
                "LNBITS_DATA_FOLDER": str(self.data),
                "LNBITS_EXTENSIONS_PATH": str(self.data),
                "LNBITS_BACKEND_WALLET_CLASS": "FakeWallet",
                "LNBITS_ADMIN_UI": "true",
                "SUPER_USER": secrets.token_hex(16),
                "LNBITS_RATE_LIMIT_NO": "1000000",
                "LNBITS_RATE_LIMIT_UNIT": "second",
                "LNBITS_EXCHANGE_RATE_PROVIDERS": "[]",
                "LNBITS_PRICE_AGGREGATOR_ENABLED": "false",
                "LNBITS_EXTENSIONS_MANIFESTS": "[]",
                "LNBITS_WASM_EXTENSIONS_MANIFESTS": "[]",
                "LNBITS_EXTENSIONS_DEACTIVATE_ALL": "true",
                "DEBUG": "false",
            }
        )
        return env

    def start(self) -> LNbitsServer:
        python = ensure_lnbits()
        begun = time.monotonic()
        self.port = _free_port()
        argv = [str(python), "-m", "uvicorn", "lnbits.__main__:app", "--host", "127.0.0.1"]
        argv += ["--port", str(self.port), "--log-level", "warning", "--no-access-log"]
        log = (self.data / "lnbits.log").open("wb")
        # LNbits serves lnbits/static relative to the current directory: its site-packages
        self._proc = subprocess.Popen(
            argv,
            cwd=_site_packages(python),
            env=self._env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        try:
            self._wait_up()
            self._first_install()
            self.customer = _finish_wallet_blocking(self.url, "customer", CUSTOMER_SATS, self.token)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - begun
        return self

    def _wait_up(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(f"LNbits exited with {self._proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(self.url + "/api/v1/health", timeout=2)
                return  # 200, or 307 to /first_install: it answers
            time.sleep(0.2)
        raise RuntimeError(f"LNbits did not answer within {START_TIMEOUT:.0f} s:\n{self.log_tail()}")

    def _first_install(self) -> None:
        password = secrets.token_urlsafe(16)
        answer = httpx.put(
            self.url + "/api/v1/auth/first_install",
            json={"username": "boltgate", "password": password, "password_repeat": password},
            timeout=30,
        )
        answer.raise_for_status()
        self.token = answer.json()["access_token"]

    def log_tail(self, lines: int = 40) -> str:
        path = self.data / "lnbits.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        shutil.rmtree(self.data, ignore_errors=True)

    # -- what the tests do with it (async: the test's event loop is not blocked)

    async def new_wallet(self, name: str, fund_sats: int = 0) -> Wallet:
        """A new account with one wallet (fiat currency cleared), credited ``fund_sats``."""
        return await asyncio.to_thread(_finish_wallet_blocking, self.url, name, fund_sats, self.token)

    async def bolt11_of(self, wallet: Wallet, payment_hash: str) -> str:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            answer = await client.get(f"/api/v1/payments/{payment_hash}", headers={"X-Api-Key": wallet.inkey})
        answer.raise_for_status()
        return str(answer.json()["details"]["bolt11"])

    async def pay(self, payer: Wallet, invoice: str) -> dict[str, Any]:
        """``payer`` pays ``invoice`` through LNbits' own API; the answer's payment."""
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            answer = await client.post(
                "/api/v1/payments",
                json={"out": True, "bolt11": invoice},
                headers={"X-Api-Key": payer.adminkey},
            )
        if answer.status_code != 201:
            raise AssertionError(f"LNbits refused the payment: HTTP {answer.status_code} {answer.text[:300]}")
        payment: dict[str, Any] = answer.json()
        return payment

    async def settle(self, merchant: Wallet, payment_hash: str) -> None:
        """The customer pays the merchant's invoice ``payment_hash``."""
        assert self.customer is not None
        payment = await self.pay(self.customer, await self.bolt11_of(merchant, payment_hash))
        assert payment["status"] == "success", payment

    async def create_invoice(self, wallet: Wallet, sats: int, memo: str = "test") -> dict[str, Any]:
        """An invoice of ``wallet`` made directly on LNbits (for the backend to pay)."""
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            answer = await client.post(
                "/api/v1/payments",
                json={"out": False, "amount": sats, "memo": memo},
                headers={"X-Api-Key": wallet.inkey},
            )
        answer.raise_for_status()
        invoice: dict[str, Any] = answer.json()
        return invoice

    async def post_to_channel(self, channel: str, data: str) -> None:
        """Anyone may post text to a websocket channel (``POST /api/v1/ws/{item_id}?data=``)."""
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            answer = await client.post(f"/api/v1/ws/{channel}", params={"data": data})
        answer.raise_for_status()


def _finish_wallet(client: httpx.Client, name: str, fund_sats: int, token: str) -> Wallet:
    created = client.post("/api/v1/account", json={"name": name})
    created.raise_for_status()
    body = created.json()
    wallet = Wallet(id=body["id"], adminkey=body["adminkey"], inkey=body["inkey"])
    # a wallet with a fiat currency would ask exchange-rate providers (the internet) for each invoice
    client.patch(
        "/api/v1/wallet", json={"currency": ""}, headers={"X-Api-Key": wallet.adminkey}
    ).raise_for_status()
    if fund_sats:
        credited = client.put(
            "/users/api/v1/balance",
            json={"id": wallet.id, "amount": fund_sats},
            headers={"Authorization": f"Bearer {token}"},
        )
        credited.raise_for_status()
    return wallet


def _finish_wallet_blocking(url: str, name: str, fund_sats: int, token: str) -> Wallet:
    with httpx.Client(base_url=url, timeout=30) as client:
        return _finish_wallet(client, name, fund_sats, token)


_SERVER: LNbitsServer | None = None
_LOCK = threading.Lock()


def _shared_blocking() -> LNbitsServer:
    global _SERVER
    with _LOCK:
        if _SERVER is None:
            server = LNbitsServer().start()
            atexit.register(server.stop)
            _SERVER = server
        return _SERVER


async def shared() -> LNbitsServer:
    """This test process's LNbits, started on first use (in a thread: the event loop runs on)."""
    if _SERVER is not None:
        return _SERVER
    return await asyncio.to_thread(_shared_blocking)


# -- LNbits' answers the proxy gives in its place


def is_payment_request(request: Request) -> bool:
    """``POST /api/v1/payments`` with ``out: true``: a payment."""
    body = request.json()
    return (
        request.method == "POST"
        and request.path.endswith("/api/v1/payments")
        and isinstance(body, dict)
        and body.get("out") is True
    )


def in_flight(request: Request) -> Response:
    """LNbits' answer to a payment its funding source has not finished within
    ``lnbits_funding_source_pay_invoice_wait_seconds``: 201 with the payment still ``pending``
    (``_pay_external_invoice`` in ``lnbits/core/services/payments.py``, 1.6.2). FakeWallet answers
    every payment at once, so this state is only reachable through the proxy."""
    invoice = str(request.json()["bolt11"])
    decoded = bolt11.decode(invoice, require_payment_secret=False)
    amount = decoded.amount_msat or 0
    now = datetime.now(UTC).isoformat()
    payment_hash = decoded.payment_hash.hex()
    return Response.json_of(
        201,
        {
            "checking_id": payment_hash,
            "payment_hash": payment_hash,
            "wallet_id": secrets.token_hex(16),
            "amount": -amount,
            "fee": -max(2000, amount // 100),
            "bolt11": invoice,
            "payment_request": invoice,
            "fiat_provider": None,
            "status": "pending",
            "memo": decoded.description or "",
            "expiry": datetime.fromtimestamp(decoded.expires_at, UTC).isoformat(),
            "webhook": None,
            "webhook_status": None,
            "preimage": None,
            "tag": None,
            "extension": None,
            "time": now,
            "created_at": now,
            "updated_at": now,
            "labels": [],
            "extra": {},
            "external_id": None,
        },
    )
