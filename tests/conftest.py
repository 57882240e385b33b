"""Shared test fixtures: a real database (SQLite by default, PostgreSQL with
BOLTGATE_TEST_DATABASE=postgresql), and real gateways served over loopback HTTP.

The database is migrated once per session; tests isolate themselves by creating their own
merchants (tenant isolation is a product guarantee, so relying on it here is fair).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn

from boltgate.app import create_app
from boltgate.config import Settings
from boltgate.db.engine import Database
from boltgate.db.migrate import upgrade
from boltgate.merchant import service as merchant_service
from boltgate.ops.http_server import BoundedHttpToolsProtocol

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT.parent / "shared" / "vectors"
PG_ADMIN_DSN = os.environ.get("BOLTGATE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
DB_KIND = os.environ.get("BOLTGATE_TEST_DATABASE", "sqlite")
DB_FIXTURES = {
    "database_url",
    "db",
    "gateway",
    "client",
    "merchant",
    "make_gateway",
    "temp_gateway",
    "make_merchant",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that touch the database get the ``db`` marker: the PostgreSQL run selects them."""
    for item in items:
        if DB_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.db)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("boltgate")


@pytest.fixture(scope="session")
async def database_url(data_root: Path) -> AsyncIterator[str]:
    if DB_KIND == "postgresql":
        name = f"boltgate_test_{secrets.token_hex(4)}"
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        url = f"{base}/{name}"
        await upgrade(url)
        yield url
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    else:
        url = f"sqlite+aiosqlite:///{data_root / 'boltgate.db'}"
        await upgrade(url)
        yield url


@pytest.fixture(scope="session")
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, pool_size=5)
    yield database
    await database.dispose()


def make_settings(data_root: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_root,
        "database_url": database_url,
        "auto_migrate": False,
        "rate_limit": "100000/second",
        "buy_rate_limit": "100000/second",
        "auth_failure_rate_limit": "100000/second",
        "log_json": True,
        "settlement_poll_interval_seconds": 0.05,
        "webhook_timeout_seconds": 3,  # every test gateway's worker gives up on a hanging receiver soon
        "database_pool_size": 5,  # a few dozen gateways share one PostgreSQL (100 connections)
    }
    values.update(overrides)
    return Settings(**values)


class Gateway:
    """A boltgate app served by uvicorn on a loopback port, in this event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host="127.0.0.1",
                port=settings.port,
                log_config=None,
                lifespan="on",
                http=BoundedHttpToolsProtocol,  # what `boltgate serve` runs
                timeout_graceful_shutdown=2,  # as `boltgate serve` (10 s): open streams must not hang a stop
            )
        )
        self.base_url = f"http://127.0.0.1:{settings.port}"
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve())
        for _ in range(500):
            if self.server.started:
                return
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        raise RuntimeError("gateway did not start")

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await self._task

    @property
    def ctx(self) -> Any:
        return self.app.state.ctx


@contextlib.asynccontextmanager
async def _gateways(data_root: Path, database_url: str) -> AsyncIterator[Callable[..., Awaitable[Gateway]]]:
    """A factory of gateways that all stop when the block ends (each holds database connections,
    and PostgreSQL allows only 100 in all: gateways live as long as the scope that needs them)."""
    started: list[Gateway] = []

    async def make(**overrides: Any) -> Gateway:
        port = free_port()
        overrides.setdefault("public_url", f"http://127.0.0.1:{port}")
        gateway = Gateway(make_settings(data_root, database_url, port=port, **overrides))
        await gateway.start()
        started.append(gateway)
        return gateway

    try:
        yield make
    finally:
        for gateway in reversed(started):
            await gateway.stop()


@pytest.fixture(scope="module")
async def make_gateway(
    data_root: Path, database_url: str
) -> AsyncIterator[Callable[..., Awaitable[Gateway]]]:
    """Gateways with their own settings, stopped when the test module ends."""
    async with _gateways(data_root, database_url) as make:
        yield make


@pytest.fixture(scope="module")
async def module_gateway(
    make_gateway: Callable[..., Awaitable[Gateway]],
) -> Callable[..., Awaitable[Gateway]]:
    return make_gateway


@pytest.fixture
async def temp_gateway(
    data_root: Path, database_url: str
) -> AsyncIterator[Callable[..., Awaitable[Gateway]]]:
    """Gateways for one test, stopped when it ends."""
    async with _gateways(data_root, database_url) as make:
        yield make


@pytest.fixture(scope="session")
async def gateway(data_root: Path, database_url: str) -> AsyncIterator[Gateway]:
    """The shared gateway of the whole run (default settings, except that its refund check runs
    only at start: every gateway of the run shares the database, and this one's own backend is the
    dev node, so its check of another module's pending refund asked a node that never saw it and
    concluded the refund early — a flake of tests/refund/test_outcomes.py; one backend per
    database is what production has)."""
    async with _gateways(data_root, database_url) as make:
        yield await make(refund_check_interval_seconds=3600)


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        yield http


@pytest.fixture
def make_merchant(db: Database) -> Callable[..., Awaitable[tuple[str, str]]]:
    """Create a merchant; returns (merchant_id, api_key)."""

    async def make(name: str = "Test Shop") -> tuple[str, str]:
        async with db.writing() as session:
            merchant, issued = await merchant_service.create_merchant(session, name)
        return merchant.id, issued.secret

    return make


@pytest.fixture
async def merchant(make_merchant: Callable[..., Awaitable[tuple[str, str]]]) -> tuple[str, str]:
    return await make_merchant()


@pytest.fixture(scope="session")
async def receiver() -> AsyncIterator[Any]:
    """A real webhook receiver on loopback; each test uses its own paths."""
    from tests.webhook.receiver import Receiver

    server = Receiver(free_port())
    await server.start()
    yield server
    await server.stop()
