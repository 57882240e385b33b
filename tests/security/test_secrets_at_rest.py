"""Secrets the gateway must be able to use again are sealed with the server key before they are
stored: a copy of the database alone does not reveal webhook signing secrets, macaroon root keys
or a merchant's wallet credentials (and keeps only hashes of the bearer tokens it hands out), and a gateway with another server key cannot open them."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from boltgate.kit.crypto import SealError, SecretBox
from boltgate.l402 import macaroon
from boltgate.l402.models import RootKey
from boltgate.merchant.models import MerchantBackend
from boltgate.shopify.models import ShopifyOrder
from boltgate.webhook.models import WebhookEndpoint
from tests.helpers import auth
from tests.lightning.fakes.phoenixd import FakePhoenixd
from tests.shopify.conftest import variants
from tests.shopify.test_flow import checkout

L402_LINE = re.compile(r'^L402 macaroon="([A-Za-z0-9+/=]+)", invoice="(lnbcrt[0-9a-z]+)"$')
OTHER_KEY = "another-server-secret-key-of-at-least-32-characters"


def boxes(gateway, purpose: str) -> tuple[SecretBox, SecretBox]:
    """(this gateway's box, a box under another server key) for one purpose."""
    return SecretBox(gateway.settings.secret_key.get_secret_value(), purpose), SecretBox(OTHER_KEY, purpose)


def assert_sealed(stored: str, plaintext: str, ours: SecretBox, theirs: SecretBox) -> None:
    assert stored.startswith("v1.") and plaintext not in stored
    assert ours.open(stored) == plaintext
    with pytest.raises(SealError):
        theirs.open(stored)


async def test_webhook_signing_secrets_are_sealed(gateway, client, merchant, receiver, db):
    _, key = merchant
    created = await client.post("/api/webhooks", json={"url": receiver.behave("/sealed")}, headers=auth(key))
    assert created.status_code == 201, created.text
    shown = created.json()["secret"]
    rotated = await client.post(f"/api/webhooks/{created.json()['id']}/rotate-secret", headers=auth(key))
    assert rotated.status_code == 200, rotated.text
    async with db.reading() as session:
        row = await session.get(WebhookEndpoint, created.json()["id"])
    assert row is not None and row.previous_secret is not None
    ours, theirs = boxes(gateway, "webhook-secrets")
    assert_sealed(row.previous_secret, shown, ours, theirs)  # the secret shown at creation
    assert_sealed(row.secret, rotated.json()["secret"], ours, theirs)
    listed = await client.get(f"/api/webhooks/{row.id}", headers=auth(key))
    assert shown not in listed.text and rotated.json()["secret"] not in listed.text  # shown once


async def test_macaroon_root_keys_are_sealed(gateway, client, db):
    challenge = await client.get("/api/l402/premium-data")
    assert challenge.status_code == 402
    token = macaroon.decode(L402_LINE.match(challenge.headers.get_list("www-authenticate")[0]).group(1))
    key_id = macaroon.root_key_id(token.identifier).hex()
    async with db.reading() as session:
        sealed = await session.scalar(select(RootKey.sealed_key).where(RootKey.key_id == key_id))
    assert sealed is not None
    ours, theirs = boxes(gateway, "l402-root-keys")
    root_key = bytes.fromhex(ours.open(sealed))
    assert macaroon.signature_valid(token, root_key)  # the sealed key is the token's root key
    assert_sealed(sealed, root_key.hex(), ours, theirs)


@pytest.fixture
async def phoenixd() -> AsyncIterator[FakePhoenixd]:
    fake = FakePhoenixd()
    await fake.start()
    yield fake
    await fake.stop()


async def test_a_merchants_wallet_credentials_are_sealed_and_never_shown(
    gateway, client, merchant, phoenixd, db
):
    merchant_id, key = merchant
    url = f"phoenixd://:{phoenixd.password}@{phoenixd.url_host}?timeout=2"
    chosen = await client.put(
        "/api/merchant/payment-provider",
        json={"provider": "phoenixd", "connectionUrl": url},
        headers=auth(key),
    )
    assert chosen.status_code == 200, chosen.text
    assert phoenixd.password not in chosen.text
    listed = await client.get("/api/merchant/payment-provider", headers=auth(key))
    assert phoenixd.password not in listed.text
    async with db.reading() as session:
        row = await session.scalar(select(MerchantBackend).where(MerchantBackend.merchant_id == merchant_id))
    assert row is not None and phoenixd.password not in row.url_shown and ":***@" in row.url_shown
    assert_sealed(row.url_sealed, url, *boxes(gateway, "merchant-backends"))


async def test_a_shopify_buyers_claim_token_is_stored_only_as_its_hash(
    sclient, merchant, connect, shopify, db
):
    shopify.reset()
    _, key = merchant
    shop, store = await connect(key)
    mug = variants(shop)["Mug/Default Title"].legacy_resource_id
    sold = await checkout(sclient, store["slug"], [{"variantId": mug, "quantity": 1}])
    assert sold.status_code == 402, sold.text
    token = sold.json()["claimToken"]
    async with db.reading() as session:
        row = await session.get(ShopifyOrder, sold.json()["orderId"])
    assert row is not None and row.claim_token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str([getattr(row, attr.key) for attr in row.__mapper__.column_attrs])
