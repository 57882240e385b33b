"""Rotating BOLTGATE_SECRET_KEY as README.md tells operators: the new key plus the old one in
BOLTGATE_SECRET_KEY_PREVIOUS, restart, ``boltgate secret-key reseal``, then the new key alone.

Each test has a database of its own (same engine as the run's), so the reseal counts are exact.
Gateways on it stand for the gateway before, during and after the rotation; the command runs as
the operator runs it, in a subprocess."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from boltgate.agent.events import platform_secret
from boltgate.config import Settings
from boltgate.dashboard import session as dashboard
from boltgate.db.engine import Database
from boltgate.db.migrate import upgrade
from boltgate.kit.crypto import KeyRing, SealError, SecretBox
from boltgate.merchant import service as merchant_service
from boltgate.ops import rekey
from boltgate.shopify.stores import Channel, claim_hash
from boltgate.webhook.models import WebhookEndpoint
from tests.conftest import DB_KIND, PG_ADMIN_DSN, Gateway, _gateways
from tests.helpers import auth
from tests.l402.test_guard import challenges, modern_credential, pay
from tests.lightning.fakes.phoenixd import FakePhoenixd
from tests.security.test_tenant_isolation import paid
from tests.shopify.conftest import new_shop

OLD = "the-server-key-before-the-rotation-0123456789"  # A
NEW = "the-server-key-after-the-rotation-9876543210"  # B
LOST = "a-server-key-nobody-has-any-more-abcdefghij"  # C
BOLTGATE = str(Path(sys.executable).with_name("boltgate"))
PREMIUM = "/api/l402/premium-data"
STORE_SECRET = "whsec_store_secret"


@dataclass
class Fresh:
    url: str
    data_dir: Path
    db: Database
    make: Callable[..., Awaitable[Gateway]]

    async def merchant(self, name: str = "Rotating Shop") -> str:
        async with self.db.writing() as session:
            _, issued = await merchant_service.create_merchant(session, name)
        return issued.secret

    def env(self, **values: str) -> dict[str, str]:
        """The environment of a `boltgate` command on this database."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOLTGATE_")}
        env |= {
            "BOLTGATE_DATA_DIR": str(self.data_dir),
            "BOLTGATE_DATABASE_URL": self.url,
            "BOLTGATE_AUTO_MIGRATE": "false",
            "BOLTGATE_LOG_LEVEL": "WARNING",
        }
        return env | {f"BOLTGATE_{k.upper()}": v for k, v in values.items()}


@pytest.fixture
async def fresh(database_url: str, tmp_path: Path) -> AsyncIterator[Fresh]:
    name = f"boltgate_rekey_{secrets.token_hex(4)}"
    if DB_KIND == "postgresql":
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        url = f"{database_url.rsplit('/', 1)[0]}/{name}"
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / (name + '.db')}"
    await upgrade(url)
    db = Database(url, pool_size=2)
    try:
        async with _gateways(tmp_path, url) as make:
            yield Fresh(url, tmp_path, db, make)
    finally:
        await db.dispose()
        if DB_KIND == "postgresql":
            admin = await asyncpg.connect(PG_ADMIN_DSN)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


@pytest.fixture
async def phoenixd() -> AsyncIterator[FakePhoenixd]:
    fake = FakePhoenixd()
    await fake.start()
    yield fake
    await fake.stop()


async def boltgate(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of one `boltgate` command, without blocking the gateways' loop."""
    proc = await asyncio.create_subprocess_exec(
        BOLTGATE, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def counts(report: str) -> dict[str, tuple[int, int, int]]:
    """column -> (checked, resealed, unreadable) from the command's report."""
    found = re.findall(r"^(\S+): (\d+) checked, (\d+) resealed, (\d+) unreadable$", report, re.M)
    return {column: (int(a), int(b), int(c)) for column, a, b, c in found}


async def sealed_values(db: Database) -> list[tuple[str, str, str]]:
    """(column, purpose, sealed value) of every sealed value in the database."""
    found = []
    async with db.reading() as session:
        for sealed in rekey.SEALED:
            column = getattr(sealed.model, sealed.column)
            for value in (await session.execute(select(column).where(column.is_not(None)))).scalars():
                found.append((sealed.name, sealed.purpose, value))
    return found


async def dashboard_form(http: httpx.AsyncClient, key: str) -> tuple[str, str]:
    """(session cookie, the CSRF token of its forms) after signing in on this gateway."""
    page = await http.get("/dashboard/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    signed = await http.post("/dashboard/login", data={"csrf": csrf.group(1), "api_key": key})
    assert signed.status_code == 303, signed.text
    cookie = signed.cookies[dashboard.COOKIE]
    hooks = await http.get("/dashboard/webhooks", headers={"cookie": f"{dashboard.COOKIE}={cookie}"})
    form = re.search(r'name="csrf" value="([^"]+)"', hooks.text)
    assert form is not None
    return cookie, form.group(1)


async def connect_store(http: httpx.AsyncClient, key: str, shopify: Any) -> dict[str, Any]:
    shop, token = new_shop(shopify)
    shop.add_product("Mug", [{"title": "Default Title", "price": "12.00", "inventory": 3}])
    body = {
        "slug": shop.domain.split(".")[0],
        "shopDomain": shop.domain,
        "accessToken": token,
        "webhookSecret": STORE_SECRET,
        "shipping": {"groups": [{"name": "world", "countries": ["*"], "rateUsd": "5.00"}]},
    }
    created = await http.post("/api/shopify/stores", json=body, headers=auth(key))
    assert created.status_code == 201, created.text
    return cast(dict[str, Any], created.json())


def client(gateway: Gateway) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=gateway.base_url, timeout=15)


def assert_mismatch(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["error"] == "secret_key_mismatch"
    assert "BOLTGATE_SECRET_KEY_PREVIOUS" in response.json()["detail"]


async def test_a_rotation_with_reseal_keeps_every_secret_and_the_new_key_alone_serves(
    fresh: Fresh, receiver: Any, shopify: Any, phoenixd: FakePhoenixd
) -> None:
    shopify.reset()
    common = {"shopify_api_base": f"{shopify.base_url}/shops/{{shop}}", "shopify_timeout_seconds": 1.0}
    path = f"/rotation-{secrets.token_hex(4)}"
    key = await fresh.merchant()

    # -- before: everything made under the old key
    before = await fresh.make(secret_key=OLD, **common)
    async with client(before) as old:
        payment = await paid(old, key, "rotation-refund")
        body = {"invoiceId": payment["invoiceId"], "amount": "0.00001", "currency": "BTC"}
        refund = (await old.post("/api/refunds", json=body, headers=auth(key))).json()
        link = urlsplit(refund["claim"]["url"]).path
        assert (await old.get(link)).status_code == 200
        hook = (
            await old.post("/api/webhooks", json={"url": receiver.behave(path)}, headers=auth(key))
        ).json()
        rotated = await old.post(
            f"/api/webhooks/{hook['id']}/rotate-secret", json={"overlapSeconds": 86400}, headers=auth(key)
        )
        assert rotated.status_code == 200, rotated.text
        secrets_shown = [hook["secret"], rotated.json()["secret"]]  # both sign during the overlap
        token, invoice, _ = challenges(await old.get(PREMIUM))
        preimage = await pay(old, invoice)
        l402 = {"authorization": f"L402 {token}:{preimage}"}
        assert (await old.get(PREMIUM, headers=l402)).status_code == 200
        _, invoice, line = challenges(await old.get(PREMIUM))
        credential = {"authorization": modern_credential(line, await pay(old, invoice))}  # not used yet
        wallet = f"phoenixd://:{phoenixd.password}@{phoenixd.url_host}?timeout=2"
        chosen = await old.put(
            "/api/merchant/payment-provider",
            json={"provider": "phoenixd", "connectionUrl": wallet},
            headers=auth(key),
        )
        assert chosen.status_code == 200, chosen.text
        store = await connect_store(old, key, shopify)
        cookie, form = await dashboard_form(old, key)
        identity = before.ctx.platform.pubkey
    await before.stop()
    made_before = len([v for v in await sealed_values(fresh.db) if v[0] == "l402_root_keys.sealed_key"])

    # -- the new key alone, before anything was resealed: clear problems, nothing leaks or is spent
    alone = await fresh.make(secret_key=NEW, **common)
    async with client(alone) as new:
        assert_mismatch(await new.post(f"/api/webhooks/{hook['id']}/test", headers=auth(key)))
        assert_mismatch(await new.get(PREMIUM, headers=l402))
        order = {"orderId": "rotation-1", "amount": "0.0001", "currency": "BTC"}
        assert_mismatch(await new.post("/api/payments", json=order, headers=auth(key)))
        assert (await new.get(link)).status_code == 404
        challenges(await new.get(PREMIUM, headers=credential))  # refused, so still unspent
        refused = await new.post(
            f"/dashboard/webhooks/{hook['id']}/test",
            data={"csrf": form},
            headers={"cookie": f"{dashboard.COOKIE}={cookie}"},
        )
        assert refused.status_code == 403
    await alone.stop()

    # -- during: the new key with the old one as previous
    during = await fresh.make(secret_key=NEW, secret_key_previous=OLD, **common)
    async with client(during) as mid:
        assert (await mid.get(link)).status_code == 200  # a claim link sent before still works
        withdraw = (await mid.get(link)).json()
        assert (await mid.get(urlsplit(withdraw["callback"]).path, params={"k1": "x", "pr": "x"})).json()[
            "error"
        ] == "invalid_k1"  # its callback opens too (and checks k1)
        spent = await mid.get(PREMIUM, headers=credential)  # a Payment challenge issued before
        assert spent.status_code == 200 and spent.json()["paidWith"] == "Payment", spent.text
        accepted = await mid.post(
            f"/dashboard/webhooks/{hook['id']}/test",
            data={"csrf": form},
            headers={"cookie": f"{dashboard.COOKIE}={cookie}"},
        )
        assert accepted.status_code == 200, accepted.text  # a form rendered before the rotation
        assert during.ctx.platform.pubkey == identity  # the Nostr identity has not moved

        env = fresh.env(secret_key=NEW, secret_key_previous=OLD)
        before_refusal = await sealed_values(fresh.db)
        code, out, err = await boltgate(env, "secret-key", "reseal")
        assert code == 2 and "BOLTGATE_NOSTR_PLATFORM_KEY" in err and out == "", (out, err)
        assert await sealed_values(fresh.db) == before_refusal  # refused before touching anything
        code, out, err = await boltgate(env, "secret-key", "platform-key")
        assert code == 0, err
        pinned = out.strip().splitlines()[-1]
        env["BOLTGATE_NOSTR_PLATFORM_KEY"] = pinned
        code, out, err = await boltgate(env, "secret-key", "reseal", "--batch", "1")
        assert code == 0, (out, err)
        root_keys = len([v for v in before_refusal if v[0] == "l402_root_keys.sealed_key"])
        assert made_before == 2 and root_keys == 3  # the third: the 402 the new key alone answered
        assert counts(out) == {
            "webhook_endpoints.secret": (1, 1, 0),
            "webhook_endpoints.previous_secret": (1, 1, 0),
            "l402_root_keys.sealed_key": (root_keys, made_before, 0),
            "merchant_backends.url_sealed": (1, 1, 0),
            "shopify_stores.access_token": (1, 1, 0),
            "shopify_stores.client_secret": (0, 0, 0),
            "shopify_stores.webhook_secret": (1, 1, 0),
        }, out
        code, again, err = await boltgate(env, "secret-key", "reseal")  # idempotent
        assert code == 0 and all(c[1] == 0 for c in counts(again).values()), again
    for column, purpose, value in await sealed_values(fresh.db):
        SecretBox(NEW, purpose).open(value)  # the new key alone opens every one
        with pytest.raises(SealError):
            SecretBox(OLD, purpose).open(value)
    await during.stop()

    # -- after: the new key alone (and the pinned platform key) serves everything made before
    after = await fresh.make(secret_key=NEW, nostr_platform_key=pinned, **common)
    async with client(after) as new:
        sent = await new.post(f"/api/webhooks/{hook['id']}/test", headers=auth(key))
        assert sent.status_code == 200 and sent.json()["success"] is True, sent.text
        got = [r for r in receiver.received[path] if r.json["event"] == "webhook.test"][-1]
        for shown in secrets_shown:  # the receivers' secrets have not changed
            Webhook(shown).verify(got.body, got.headers)
        assert (await new.get(PREMIUM, headers=l402)).status_code == 200  # a token bought before
        made = await new.post("/api/payments", json=order, headers=auth(key))
        assert made.status_code == 201, made.text  # on the merchant's own wallet
        assert made.json()["lightningInvoice"] in {i.invoice for i in phoenixd.incoming.values()}
        checked = await new.put(
            f"/api/shopify/stores/{store['slug']}", json={"active": True}, headers=auth(key)
        )
        assert checked.status_code == 200, checked.text  # its Admin token was opened and accepted
        assert after.ctx.platform.pubkey == identity
        assert (await new.get(link)).status_code == 404  # links under the old key end with it


async def test_a_value_no_key_opens_is_a_503_problem_and_reseal_reports_it(
    fresh: Fresh, receiver: Any
) -> None:
    key = await fresh.merchant()
    lost = await fresh.make(secret_key=LOST)
    async with client(lost) as http:
        hook = (
            await http.post("/api/webhooks", json={"url": receiver.behave("/lost")}, headers=auth(key))
        ).json()
    await lost.stop()
    async with fresh.db.reading() as session:
        sealed = (await session.get(WebhookEndpoint, hook["id"])).secret  # type: ignore[union-attr]

    gateway = await fresh.make(secret_key=NEW, secret_key_previous=OLD)  # (it sets the log handlers)
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger().addHandler(handler)
    try:
        async with client(gateway) as http:
            answer = await http.post(f"/api/webhooks/{hook['id']}/test", headers=auth(key))
    finally:
        logging.getLogger().removeHandler(handler)
    assert_mismatch(answer)
    for secret in (sealed, hook["secret"], LOST, NEW, OLD):
        assert secret not in answer.text and not any(secret in line for line in lines)
    mismatch = [line for line in lines if "secret_key_mismatch" in line]
    assert len(mismatch) == 1 and "webhook-secrets" in mismatch[0], lines

    env = fresh.env(secret_key=NEW, secret_key_previous=OLD, nostr_platform_key="01" * 32)
    code, out, err = await boltgate(env, "secret-key", "reseal")
    assert code == 1, (out, err)
    assert counts(out)["webhook_endpoints.secret"] == (1, 0, 1)
    assert "1 values could not be opened with any key" in out and sealed not in out + err
    async with fresh.db.reading() as session:
        assert (await session.get(WebhookEndpoint, hook["id"])).secret == sealed  # type: ignore[union-attr]


# -- what is signed, not sealed: accepted under every key of the ring, made under the current one


def ring_settings(*keys: str) -> Settings:
    return Settings(_env_file=None, secret_key=keys[0], secret_key_previous=",".join(keys[1:]) or None)


def test_dashboard_form_tokens_made_under_a_previous_key_are_accepted():
    token = dashboard.new_token()
    form = dashboard.csrf_for(ring_settings(OLD), token)
    assert dashboard.csrf_ok(ring_settings(NEW, OLD), token, form)
    assert not dashboard.csrf_ok(ring_settings(NEW), token, form)
    assert dashboard.csrf_for(ring_settings(NEW, OLD), token) == dashboard.csrf_for(ring_settings(NEW), token)
    assert not dashboard.csrf_ok(ring_settings(NEW, OLD), token, "é" * 64)  # no TypeError on non-ASCII


def test_a_shopify_claim_token_shown_again_is_the_one_the_buyer_has():
    admin: Any = None
    made_before = Channel.build(admin, KeyRing((OLD,))).claim_token("shpfy_order1")
    ring = Channel.build(admin, KeyRing((NEW, OLD)))
    assert ring.claim_token("shpfy_order1", claim_hash(made_before)) == made_before
    assert ring.claim_token("shpfy_order1") == Channel.build(admin, KeyRing((NEW,))).claim_token(
        "shpfy_order1"
    )
    assert ring.claim_token("shpfy_order1") != made_before  # new orders get tokens under the new key


def test_the_platform_key_stays_the_one_of_the_oldest_key_during_a_rotation():
    before = platform_secret(KeyRing((OLD,)), None)
    assert platform_secret(KeyRing((NEW, OLD)), None) == before
    assert platform_secret(KeyRing((LOST, NEW, OLD)), None) == before
    assert platform_secret(KeyRing((NEW,)), None) != before
    assert platform_secret(KeyRing((NEW,)), before.hex()) == before  # pinned: the ring does not matter
