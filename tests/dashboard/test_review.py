"""Review findings on the dashboard (fixed): filters that used to raise 500."""

from __future__ import annotations


async def test_the_last_representable_day_is_not_a_500(dash, merchant):
    client = await dash()
    await client.sign_in(merchant[1])
    response = await client.get("/dashboard/payments", params={"to": "9999-12-31"})
    assert response.status_code in (200, 400), response.text[:300]
    assert response.headers["cache-control"] == "no-store"


async def test_a_non_ascii_digit_page_number_is_a_400(dash, merchant):
    client = await dash()
    await client.sign_in(merchant[1])
    response = await client.get("/dashboard/payments", params={"page": "\u00b2"})
    assert response.status_code == 400 and 'id="filter-errors"' in response.text, response.text[:300]
