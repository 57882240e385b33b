"""What changing BOLTGATE_SECRET_KEY does, as docs/security.md tells operators: API keys keep
working (they are hashes), a webhook endpoint signs again once its secret is rotated with no
overlap, and refund claim links change (the old link no longer opens). Two gateways on one
database, each with its own server key, stand for the gateway before and after the change."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from boltgate.kit.crypto import SealError
from boltgate.webhook.models import WebhookEndpoint
from tests.helpers import auth
from tests.security.test_tenant_isolation import paid

NEW_KEY = "the-server-key-after-the-change-0123456789abcdef"


@pytest.fixture
async def before_and_after(temp_gateway):
    before = await temp_gateway()
    after = await temp_gateway(secret_key=NEW_KEY)
    async with (
        httpx.AsyncClient(base_url=before.base_url, timeout=15) as old,
        httpx.AsyncClient(base_url=after.base_url, timeout=15) as new,
    ):
        yield old, new, after


async def test_api_keys_survive_and_a_rotated_webhook_secret_signs_again(
    before_and_after, merchant, receiver, db
):
    old, new, after = before_and_after
    _, key = merchant
    assert (await new.get("/api/merchant/me", headers=auth(key))).status_code == 200
    hook = (
        await old.post("/api/webhooks", json={"url": receiver.behave("/key-change")}, headers=auth(key))
    ).json()
    async with db.reading() as session:
        sealed = (await session.get(WebhookEndpoint, hook["id"])).secret
    with pytest.raises(SealError):  # sealed under the old key: the new gateway cannot sign with it
        after.ctx.secrets.open(sealed)
    rotated = await new.post(
        f"/api/webhooks/{hook['id']}/rotate-secret", json={"overlapSeconds": 0}, headers=auth(key)
    )
    assert rotated.status_code == 200, rotated.text
    sent = await new.post(f"/api/webhooks/{hook['id']}/test", headers=auth(key))
    assert sent.status_code == 200 and sent.json()["success"] is True, sent.text
    got = (await receiver.wait_for("/key-change", 1))[-1]
    Webhook(rotated.json()["secret"]).verify(got.body, got.headers)


async def test_refund_claim_links_change_with_the_key(before_and_after, merchant):
    old, new, _ = before_and_after
    _, key = merchant
    payment = await paid(old, key, "key-change-refund")
    body = {"invoiceId": payment["invoiceId"], "amount": "0.00001", "currency": "BTC"}
    refund = (await old.post("/api/refunds", json=body, headers=auth(key))).json()
    old_link = urlsplit(refund["claim"]["url"]).path
    assert (await old.get(old_link)).status_code == 200
    assert (await new.get(old_link)).status_code == 404
    shown_again = (await new.get(f"/api/refunds/{refund['refundId']}", headers=auth(key))).json()
    new_link = urlsplit(shown_again["claim"]["url"]).path
    assert new_link != old_link and (await new.get(new_link)).status_code == 200
