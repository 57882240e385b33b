"""API keys over HTTP: several per merchant, shown once, stored hashed, revocable."""

from __future__ import annotations

from sqlalchemy import select

from boltgate.kit.ids import hash_api_key
from boltgate.merchant.models import ApiKey
from tests.helpers import auth


async def test_create_list_and_revoke_keys(client, merchant, db):
    merchant_id, key = merchant
    created = await client.post("/api/merchant/keys", json={"name": "shop backend"}, headers=auth(key))
    assert created.status_code == 201
    second = created.json()
    assert second["apiKey"].startswith("le_live_") and len(second["apiKey"]) == 48
    assert second["prefix"] == second["apiKey"][:12]

    listing = (await client.get("/api/merchant/keys", headers=auth(key))).json()
    assert listing["total"] == 2
    assert all("apiKey" not in item for item in listing["items"])

    async with db.reading() as session:
        stored = (await session.scalars(select(ApiKey).where(ApiKey.id == second["id"]))).one()
    assert stored.key_hash == hash_api_key(second["apiKey"])
    assert second["apiKey"] not in (stored.key_hash, stored.prefix)

    assert (await client.get("/api/payments", headers=auth(second["apiKey"]))).status_code == 200
    revoked = await client.delete(f"/api/merchant/keys/{second['id']}", headers=auth(key))
    assert revoked.status_code == 200
    assert revoked.json()["revokedAt"] is not None
    after = await client.get("/api/payments", headers=auth(second["apiKey"]))
    assert after.status_code == 401
    # the first key still works: keys are independent
    assert (await client.get("/api/payments", headers=auth(key))).status_code == 200


async def test_test_mode_keys(client, merchant):
    _, key = merchant
    created = await client.post("/api/merchant/keys", json={"testMode": True}, headers=auth(key))
    assert created.json()["apiKey"].startswith("le_test_")


async def test_cannot_revoke_another_merchants_key(client, make_merchant):
    _, key_a = await make_merchant("A")
    _, key_b = await make_merchant("B")
    a_keys = (await client.get("/api/merchant/keys", headers=auth(key_a))).json()["items"]
    response = await client.delete(f"/api/merchant/keys/{a_keys[0]['id']}", headers=auth(key_b))
    assert response.status_code == 404
    assert response.json()["error"] == "api_key_not_found"
    assert (await client.get("/api/payments", headers=auth(key_a))).status_code == 200


async def test_bad_key_names_are_400(client, merchant):
    _, key = merchant
    for body in ({"name": ""}, {"name": "x" * 101}, {"name": "tab\there"}):
        response = await client.post("/api/merchant/keys", json=body, headers=auth(key))
        assert response.status_code == 400, body


async def test_me(client, merchant):
    merchant_id, key = merchant
    me = (await client.get("/api/merchant/me", headers=auth(key))).json()
    assert me["merchantId"] == merchant_id
    assert me["isActive"] is True


async def test_admin_merchant_creation(make_gateway):
    import httpx

    gateway = await make_gateway(admin_api_key="admin-" + "k" * 40)
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        denied = await http.post("/api/admin/merchants", json={"name": "X"}, headers={"X-Admin-Key": "wrong"})
        assert denied.status_code == 401
        created = await http.post(
            "/api/admin/merchants", json={"name": "Via API"}, headers={"X-Admin-Key": "admin-" + "k" * 40}
        )
        assert created.status_code == 201
        me = await http.get("/api/merchant/me", headers=auth(created.json()["apiKey"]))
        assert me.json()["name"] == "Via API"
