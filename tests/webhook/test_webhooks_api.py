"""The webhooks API over real HTTP: endpoints, secrets shown once, rotation, validation, tenancy."""

from __future__ import annotations

import pytest
from standardwebhooks.webhooks import Webhook

from boltgate.webhook import service
from tests.conftest import make_settings
from tests.helpers import auth


async def test_endpoint_lifecycle(client, merchant, receiver):
    _, key = merchant
    url = receiver.behave("/lifecycle")
    created = await client.post(
        "/api/webhooks",
        json={"url": url, "description": "orders", "events": ["payment.completed"]},
        headers=auth(key),
    )
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert endpoint["secret"].startswith("whsec_") and len(endpoint["secret"]) == 6 + 44
    assert endpoint["events"] == ["payment.completed"] and endpoint["enabled"] is True
    assert created.headers["location"] == f"/api/webhooks/{endpoint['id']}"

    shown = (await client.get(f"/api/webhooks/{endpoint['id']}", headers=auth(key))).json()
    assert "secret" not in shown  # shown once
    listed = (await client.get("/api/webhooks", headers=auth(key))).json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == endpoint["id"]
    assert endpoint["secret"] not in str(listed)

    changed = await client.put(
        f"/api/webhooks/{endpoint['id']}", json={"enabled": False, "events": []}, headers=auth(key)
    )
    assert (
        changed.status_code == 200 and changed.json()["enabled"] is False and changed.json()["events"] == []
    )

    gone = await client.delete(f"/api/webhooks/{endpoint['id']}", headers=auth(key))
    assert gone.status_code == 204
    assert (await client.get(f"/api/webhooks/{endpoint['id']}", headers=auth(key))).status_code == 404


async def test_secret_rotation_overlap(client, merchant, receiver):
    _, key = merchant
    url = receiver.behave("/rotation")
    endpoint = (await client.post("/api/webhooks", json={"url": url}, headers=auth(key))).json()
    rotated = await client.post(
        f"/api/webhooks/{endpoint['id']}/rotate-secret", json={"overlapSeconds": 3600}, headers=auth(key)
    )
    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret != endpoint["secret"] and rotated.json()["secretRotatedUntil"]

    ping = await client.post(f"/api/webhooks/{endpoint['id']}/test", headers=auth(key))
    assert ping.status_code == 200 and ping.json()["success"] is True and ping.json()["statusCode"] == 200
    got = (await receiver.wait_for("/rotation", 1))[-1]
    assert got.json["event"] == "webhook.test"
    Webhook(new_secret).verify(got.body, got.headers)  # both sign during the overlap
    Webhook(endpoint["secret"]).verify(got.body, got.headers)

    immediate = await client.post(
        f"/api/webhooks/{endpoint['id']}/rotate-secret", json={"overlapSeconds": 0}, headers=auth(key)
    )
    newest = immediate.json()["secret"]
    assert immediate.json()["secretRotatedUntil"] is None
    await client.post(f"/api/webhooks/{endpoint['id']}/test", headers=auth(key))
    got = (await receiver.wait_for("/rotation", 2))[-1]
    Webhook(newest).verify(got.body, got.headers)
    with pytest.raises(Exception, match="signature"):
        Webhook(new_secret).verify(got.body, got.headers)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com/hook"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "https://user:pw@example.com/"}, "url"),
        ({"url": "https://example.com/", "events": ["payment.nope"]}, "events"),
        ({"url": "https://example.com/", "extra": 1}, "extra"),
        ({"url": "https://example.com/", "events": "payment.completed"}, "events"),
        ({}, "url"),
    ],
)
async def test_invalid_endpoints_are_refused_and_nothing_is_written(client, merchant, body, field):
    _, key = merchant
    response = await client.post("/api/webhooks", json=body, headers=auth(key))
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["error"] == "validation_error" and field in problem["errors"]
    assert response.headers["content-type"].startswith("application/problem+json")
    assert (await client.get("/api/webhooks", headers=auth(key))).json()["total"] == 0


def test_policy_outside_dev(tmp_path):
    production = make_settings(tmp_path, "sqlite+aiosqlite:///x.db", mode="production")
    with pytest.raises(Exception, match="https"):
        service.check_policy("http://example.com/hook", production)
    for private in (
        "https://127.0.0.1/h",
        "https://10.0.0.8/h",
        "https://169.254.169.254/latest",
        "https://[::1]/h",
    ):
        with pytest.raises(Exception, match="private") as info:
            service.check_policy(private, production)
        assert info.value.code == "webhook_url_not_allowed"
    service.check_policy("https://example.com/hook", production)
    allowed = make_settings(
        tmp_path, "sqlite+aiosqlite:///x.db", mode="production", webhook_allow_private=True
    )
    service.check_policy("https://10.0.0.8/h", allowed)


async def test_other_merchants_endpoints_and_deliveries_are_invisible(client, make_merchant, receiver):
    _, key_a = await make_merchant("A")
    _, key_b = await make_merchant("B")
    endpoint = (
        await client.post("/api/webhooks", json={"url": receiver.behave("/tenant")}, headers=auth(key_a))
    ).json()
    for method, path in (
        ("GET", f"/api/webhooks/{endpoint['id']}"),
        ("PUT", f"/api/webhooks/{endpoint['id']}"),
        ("DELETE", f"/api/webhooks/{endpoint['id']}"),
        ("GET", f"/api/webhooks/{endpoint['id']}/deliveries"),
        ("POST", f"/api/webhooks/{endpoint['id']}/test"),
        ("POST", f"/api/webhooks/{endpoint['id']}/rotate-secret"),
    ):
        kwargs = {"json": {"enabled": False}} if method == "PUT" else {}
        response = await client.request(method, path, headers=auth(key_b), **kwargs)
        assert response.status_code == 404, (method, path, response.text)
    assert (await client.get("/api/webhooks", headers=auth(key_b))).json()["total"] == 0
    assert (await client.get(f"/api/webhooks/{endpoint['id']}", headers=auth(key_a))).json()[
        "enabled"
    ] is True
    assert (await client.get("/api/webhooks")).status_code == 401
