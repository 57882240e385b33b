"""The operator's admin route is closed unless BOLTGATE_ADMIN_API_KEY is set: no header value,
empty or guessed, opens it (the default gateway of the test run sets no admin key)."""

from __future__ import annotations

import httpx
import pytest

from boltgate.config import ConfigError, Settings


@pytest.mark.parametrize("given", [None, "", "None", "null", "admin", "x" * 64])
async def test_without_an_admin_key_the_admin_route_is_closed(client, given):
    headers = {} if given is None else {"X-Admin-Key": given}
    response = await client.post("/api/admin/merchants", json={"name": "Intruder"}, headers=headers)
    assert response.status_code == 401 and response.json()["error"] == "invalid_admin_key"
    assert "apiKey" not in response.text


async def test_wrong_admin_keys_are_limited_per_client_address(make_gateway):
    """Guessing the admin key is slow: wrong keys count with wrong API keys against the client
    address."""
    admin = "admin-" + "k" * 40
    gateway = await make_gateway(admin_api_key=admin, auth_failure_rate_limit="3/minute")
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        guesses = [
            (
                await http.post(
                    "/api/admin/merchants", json={"name": "x"}, headers={"X-Admin-Key": f"guess{i}"}
                )
            )
            for i in range(4)
        ]
        assert [answer.status_code for answer in guesses] == [401, 401, 401, 429]
        assert guesses[-1].json()["error"] == "rate_limited" and "apiKey" not in guesses[-1].text
        # a wrong API key from the same address is refused by the same counter
        assert (await http.get("/api/payments", headers={"X-API-Key": "le_live_guess"})).status_code == 429
        # only failures count: the right key from the same address is served
        made = await http.post("/api/admin/merchants", json={"name": "Shop"}, headers={"X-Admin-Key": admin})
        assert made.status_code == 201 and made.json()["apiKey"].startswith("le_live_")


def test_production_refuses_a_short_admin_key():
    base = {
        "_env_file": None,
        "mode": "production",
        "secret_key": "s" * 40,
        "lightning_url": "lnd-rest://n:1",
    }
    with pytest.raises(ConfigError, match="BOLTGATE_ADMIN_API_KEY"):
        Settings(**base, admin_api_key="admin").check_production()
    for fine in ("a" * 32, None, ""):  # long enough, or unset: the route is closed
        Settings(**base, admin_api_key=fine).check_production()
