"""Shopify signs a webhook's body only (``X-Shopify-Hmac-SHA256``); the topic, the webhook id and
the shop domain are plain headers. Whoever holds one signed body (any receiver of the shop's
notification webhooks signed with the same key, say) can send it again under another id and topic.
These tests say what such a replay must not be able to do."""

from __future__ import annotations

from tests.helpers import auth
from tests.shopify.conftest import variants

SECRET = "whsec_store_secret"  # the webhook secret `connect` gives every store


async def test_a_signed_body_replayed_under_another_topic_does_not_switch_the_store_off(
    sclient, merchant, connect, shopify
):
    shopify.reset()  # no fault left by another module's test
    _, key = merchant
    shop, store = await connect(key)
    url = f"{sclient.base_url}/api/shopify/{store['slug']}/webhooks"
    mug = variants(shop)["Mug/Default Title"]
    payload = shopify.product_payload(shop, mug.product.id)  # a body Shopify really signs and sends
    genuine = await shopify.send_webhook(
        url, shop, "products/update", payload, secret=SECRET, webhook_id="a-1"
    )
    assert genuine.status_code == 200 and genuine.json()["handled"] is True
    # the same signed bytes, another (unsigned) id and topic
    replay = await shopify.send_webhook(
        url, shop, "app/uninstalled", payload, secret=SECRET, webhook_id="a-2"
    )
    # Shopify still takes the store's token: whatever the header says, the app is installed
    assert replay.status_code == 200 and replay.json()["handled"] is False
    got = await sclient.get(f"/api/shopify/stores/{store['slug']}", headers=auth(key))
    assert got.json()["active"] is True


async def test_a_replayed_delivery_under_its_own_id_changes_nothing(sclient, merchant, connect, shopify):
    shopify.reset()
    _, key = merchant
    shop, store = await connect(key)
    url = f"{sclient.base_url}/api/shopify/{store['slug']}/webhooks"
    payload = {"id": 1}
    tokens = set(shop.tokens)
    shop.tokens.clear()  # what uninstalling the app does to its tokens
    first = await shopify.send_webhook(url, shop, "app/uninstalled", payload, secret=SECRET, webhook_id="b-1")
    assert first.json() == {"received": True, "duplicate": False, "handled": True}
    shop.tokens.update(tokens)  # installed again
    reconnected = await sclient.put(
        f"/api/shopify/stores/{store['slug']}", json={"active": True}, headers=auth(key)
    )
    assert reconnected.status_code == 200 and reconnected.json()["active"] is True
    again = await shopify.send_webhook(url, shop, "app/uninstalled", payload, secret=SECRET, webhook_id="b-1")
    assert again.json() == {"received": True, "duplicate": True}
    got = await sclient.get(f"/api/shopify/stores/{store['slug']}", headers=auth(key))
    assert got.json()["active"] is True


async def test_an_uninstall_shopify_cannot_confirm_now_is_delivered_again(
    sclient, merchant, connect, shopify
):
    shopify.reset()
    _, key = merchant
    shop, store = await connect(key)
    url = f"{sclient.base_url}/api/shopify/{store['slug']}/webhooks"
    shop.tokens.clear()
    shopify.status_next(10, 503)  # Shopify down while the uninstall arrives
    later = await shopify.send_webhook(
        url, shop, "app/uninstalled", {"id": 1}, secret=SECRET, webhook_id="c-1"
    )
    assert later.status_code == 503 and later.json()["error"] == "shopify_unavailable"
    assert "retry-after" in later.headers
    shopify.reset()
    again = await shopify.send_webhook(
        url, shop, "app/uninstalled", {"id": 1}, secret=SECRET, webhook_id="c-1"
    )
    assert again.json() == {"received": True, "duplicate": False, "handled": True}
    got = await sclient.get(f"/api/shopify/stores/{store['slug']}", headers=auth(key))
    assert got.json()["active"] is False
