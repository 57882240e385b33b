"""The address sign-in links go to: pending until its owner confirms it from the mailbox, and tied
to the API key that set it (revoking that key takes the address off, with its links and sessions)."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from boltgate.dashboard.models import DashboardLoginLink
from boltgate.kit.clock import utcnow
from tests.dashboard.conftest import confirm, confirmation_link, csrf_of, set_email
from tests.helpers import auth

pytestmark = pytest.mark.db


def _address(merchant_id: str, who: str) -> str:
    return f"{who}-{merchant_id[-8:].lower()}@shop.example"


async def _me(api: httpx.AsyncClient, key: str) -> dict:
    response = await api.get("/api/merchant/me", headers=auth(key))
    assert response.status_code == 200
    return dict(response.json())


async def _sign_in_links(db, merchant_id: str) -> int:
    async with db.reading() as session:
        rows = await session.scalars(
            select(DashboardLoginLink).where(
                DashboardLoginLink.merchant_id == merchant_id, DashboardLoginLink.purpose == "sign_in"
            )
        )
        return len(list(rows))


async def _ask_link(client, email: str) -> httpx.Response:
    page = await client.get("/dashboard/login")
    return await client.http.post("/dashboard/login/email", data={"csrf": csrf_of(page.text), "email": email})


async def _sign_in_by_email(dash, smtp, email: str):
    client = await dash()
    before = len(smtp.messages)
    assert (await _ask_link(client, email)).status_code == 200
    messages = await smtp.wait_for(before + 1)
    link = next(m for m in messages[before:] if m.recipients == [email])
    token = link.text.split("token=")[1].split()[0]
    page = await client.http.get("/dashboard/login/link?token=" + token)
    assert page.status_code == 200, page.text
    used = await client.http.post("/dashboard/login/link", data={"csrf": csrf_of(page.text), "token": token})
    assert used.status_code == 303
    return client, token


async def test_a_new_address_is_pending_until_confirmed(dash, api, make_merchant, smtp, db):
    merchant_id, key = await make_merchant("Pending Shop")
    email = _address(merchant_id, "pending")
    before = len(smtp.messages)
    patched = await api.patch("/api/merchant/me", json={"email": email}, headers=auth(key))
    assert patched.status_code == 200
    assert (patched.json()["email"], patched.json()["emailPending"]) == (None, email)
    link = await confirmation_link(smtp, before, email)

    # not yet the account's address: asking for a sign-in link makes none
    client = await dash()
    assert (await _ask_link(client, email)).status_code == 200
    assert await _sign_in_links(db, merchant_id) == 0

    async with httpx.AsyncClient(base_url=str(api.base_url), timeout=10) as browser:
        page = await browser.get(link.removeprefix(str(api.base_url).rstrip("/")))
        assert page.status_code == 200 and "Pending Shop" in page.text and email in page.text
        assert (await _me(api, key))["email"] is None  # opening the page (a mail scanner) changes nothing
        done = await confirm(browser, link)
        assert done.status_code == 200 and 'id="email-confirmed"' in done.text
        again = await confirm(browser, link)
        assert again.status_code == 400 and 'data-error="confirmation_link_invalid"' in again.text
    me = await _me(api, key)
    assert (me["email"], me["emailPending"]) == (email, None)
    signed, _ = await _sign_in_by_email(dash, smtp, email)
    assert "Pending Shop" in (await signed.get("/dashboard/payments")).text


async def test_a_newer_request_replaces_the_older_link(api, make_merchant, smtp):
    merchant_id, key = await make_merchant()
    first, second = _address(merchant_id, "first"), _address(merchant_id, "second")
    before = len(smtp.messages)
    await api.patch("/api/merchant/me", json={"email": first}, headers=auth(key))
    old = await confirmation_link(smtp, before, first)
    before = len(smtp.messages)
    await api.patch("/api/merchant/me", json={"email": second}, headers=auth(key))
    new = await confirmation_link(smtp, before, second)
    async with httpx.AsyncClient(base_url=str(api.base_url), timeout=10) as browser:
        assert (await confirm(browser, old)).status_code == 400
        assert (await confirm(browser, new)).status_code == 200
    assert (await _me(api, key))["email"] == second


async def test_an_expired_confirmation_link_changes_nothing(api, make_merchant, smtp, db):
    merchant_id, key = await make_merchant()
    email = _address(merchant_id, "late")
    before = len(smtp.messages)
    await api.patch("/api/merchant/me", json={"email": email}, headers=auth(key))
    link = await confirmation_link(smtp, before, email)
    async with db.writing() as session:
        await session.execute(
            update(DashboardLoginLink)
            .where(DashboardLoginLink.merchant_id == merchant_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    async with httpx.AsyncClient(base_url=str(api.base_url), timeout=10) as browser:
        answer = await confirm(browser, link)
    assert answer.status_code == 400 and email not in answer.text
    assert (await _me(api, key))["email"] is None


async def test_revoking_the_key_that_set_the_address_ends_email_sign_in(dash, api, make_merchant, smtp, db):
    merchant_id, owner_key = await make_merchant("Staff Shop")
    # a second key (a member of staff) sets its own mailbox as the account's address
    made = await api.post("/api/merchant/keys", json={"name": "staff"}, headers=auth(owner_key))
    staff_id, staff_key = made.json()["id"], made.json()["apiKey"]
    email = _address(merchant_id, "staff")
    await set_email(api, smtp, staff_key, email)
    by_mail, pending_token = await _sign_in_by_email(dash, smtp, email)
    # a sign-in link asked for but not yet used
    spare = await dash()
    before = len(smtp.messages)
    await _ask_link(spare, email)
    unused = (await smtp.wait_for(before + 1))[before].text.split("token=")[1].split()[0]
    by_key = await dash()
    assert (await by_key.sign_in(owner_key)).status_code == 303

    revoked = await api.delete(f"/api/merchant/keys/{staff_id}", headers=auth(owner_key))
    assert revoked.status_code == 200
    me = await _me(api, owner_key)
    assert me["email"] is None
    # the session the staff address opened is over; the owner's key session is not
    gone = await by_mail.get("/dashboard/payments")
    assert gone.status_code == 303 and "/dashboard/login" in gone.headers["location"]
    assert (await by_key.get("/dashboard/payments")).status_code == 200
    # the link already in the staff mailbox no longer signs in, and new ones are not made
    page = await spare.http.get("/dashboard/login/link?token=" + unused)
    assert page.status_code == 400
    login = await spare.http.get("/dashboard/login")
    used = await spare.http.post("/dashboard/login/link", data={"csrf": csrf_of(login.text), "token": unused})
    assert used.status_code == 400
    links_before = await _sign_in_links(db, merchant_id)
    await _ask_link(await dash(), email)
    assert await _sign_in_links(db, merchant_id) == links_before


async def test_revoking_another_key_keeps_the_address(api, make_merchant, smtp):
    merchant_id, key = await make_merchant()
    made = await api.post("/api/merchant/keys", json={"name": "ci"}, headers=auth(key))
    email = _address(merchant_id, "keep")
    await set_email(api, smtp, key, email)
    await api.delete(f"/api/merchant/keys/{made.json()['id']}", headers=auth(key))
    assert (await _me(api, key))["email"] == email


async def test_a_link_asked_for_by_a_key_revoked_since_does_not_confirm(api, make_merchant, smtp):
    merchant_id, owner_key = await make_merchant()
    made = await api.post("/api/merchant/keys", json={"name": "gone"}, headers=auth(owner_key))
    email = _address(merchant_id, "gone")
    before = len(smtp.messages)
    await api.patch("/api/merchant/me", json={"email": email}, headers=auth(made.json()["apiKey"]))
    link = await confirmation_link(smtp, before, email)
    await api.delete(f"/api/merchant/keys/{made.json()['id']}", headers=auth(owner_key))
    async with httpx.AsyncClient(base_url=str(api.base_url), timeout=10) as browser:
        assert (await confirm(browser, link)).status_code == 400
    assert (await _me(api, owner_key))["email"] is None


async def test_changing_or_removing_the_address_ends_its_sessions(dash, api, make_merchant, smtp):
    merchant_id, key = await make_merchant()
    old, new = _address(merchant_id, "old"), _address(merchant_id, "new")
    await set_email(api, smtp, key, old)
    by_old, _ = await _sign_in_by_email(dash, smtp, old)
    # asking for a new address alone changes nothing yet
    before = len(smtp.messages)
    await api.patch("/api/merchant/me", json={"email": new}, headers=auth(key))
    link = await confirmation_link(smtp, before, new)
    assert (await by_old.get("/dashboard/payments")).status_code == 200
    async with httpx.AsyncClient(base_url=str(api.base_url), timeout=10) as browser:
        assert (await confirm(browser, link)).status_code == 200
    assert (await by_old.get("/dashboard/payments")).status_code == 303

    by_new, _ = await _sign_in_by_email(dash, smtp, new)
    cleared = await api.patch("/api/merchant/me", json={"email": None}, headers=auth(key))
    assert (cleared.json()["email"], cleared.json()["emailPending"]) == (None, None)
    assert (await by_new.get("/dashboard/payments")).status_code == 303


async def test_without_smtp_an_address_stays_pending(client, merchant):
    _, key = merchant
    patched = await client.patch("/api/merchant/me", json={"email": "shop@example.test"}, headers=auth(key))
    assert patched.status_code == 200
    assert (patched.json()["email"], patched.json()["emailPending"]) == (None, "shop@example.test")
    page = await client.get("/dashboard/email/confirm?token=" + "x" * 43)
    assert page.status_code == 400


async def test_the_keys_page_names_the_key_that_set_the_address(dash, api, make_merchant, smtp):
    merchant_id, key = await make_merchant()
    other = await api.post("/api/merchant/keys", json={"name": "other"}, headers=auth(key))
    email = _address(merchant_id, "keys")
    await set_email(api, smtp, key, email)
    client = await dash()
    assert (await client.sign_in(other.json()["apiKey"])).status_code == 303
    page = (await client.get("/dashboard/keys")).text
    rows = {row.split('"', 1)[0]: row for row in page.split('<tr data-id="')[1:]}
    marked = [key_id for key_id, row in rows.items() if "sets the sign-in address " + email in row]
    assert len(marked) == 1 and marked[0] != other.json()["id"]
    assert "The sign-in address " + email + " it set is removed too." in rows[marked[0]]
