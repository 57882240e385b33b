"""The operator's admin route is closed unless BOLTGATE_ADMIN_API_KEY is set: no header value,
empty or guessed, opens it (the default gateway of the test run sets no admin key)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("given", [None, "", "None", "null", "admin", "x" * 64])
async def test_without_an_admin_key_the_admin_route_is_closed(client, given):
    headers = {} if given is None else {"X-Admin-Key": given}
    response = await client.post("/api/admin/merchants", json={"name": "Intruder"}, headers=headers)
    assert response.status_code == 401 and response.json()["error"] == "invalid_admin_key"
    assert "apiKey" not in response.text
