"""Signing in and out of the dashboard over real HTTP: cookies, hashed sessions, expiry, CSRF,
rate limits, and sign-in links sent through a real SMTP server on loopback."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from boltgate.dashboard.models import DashboardLoginLink, DashboardSession
from boltgate.dashboard.session import COOKIE, LOGIN_COOKIE
from boltgate.kit.clock import utcnow
from tests.dashboard.conftest import csrf_of, set_email
from tests.helpers import auth


def _set_cookie(response: httpx.Response, name: str) -> str:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(name + "="):
            return header
    raise AssertionError(f"no {name} cookie in {response.headers.get_list('set-cookie')}")


async def test_key_sign_in_sets_a_hardened_cookie_and_stores_only_its_hash(dash, merchant, db):
    merchant_id, key = merchant
    client = await dash()
    response = await client.sign_in(key)
    assert response.status_code == 303 and response.headers["location"] == "/dashboard/payments"
    cookie = _set_cookie(response, COOKIE)
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/dashboard" in cookie
    assert "Secure" not in cookie  # the public URL is http here
    token = client.http.cookies[COOKIE]
    async with db.reading() as session:
        rows = list(
            await session.scalars(select(DashboardSession).where(DashboardSession.merchant_id == merchant_id))
        )
    assert [row.token_hash for row in rows] == [hashlib.sha256(token.encode()).hexdigest()]
    assert token not in str([vars(row) for row in rows])
    page = await client.get("/dashboard/payments")
    assert page.status_code == 200 and "Payments" in page.text
    assert key not in page.text  # the key signed in with is never shown again


async def test_pages_carry_a_strict_csp_and_are_never_cached(dash, merchant):
    client = await dash()
    login = await client.get("/dashboard/login")
    await client.sign_in(merchant[1])
    for response in (login, await client.get("/dashboard/payments"), await client.get("/dashboard/keys")):
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert response.headers["cache-control"] == "no-store"
        assert (
            "<script>" not in response.text
            and " style=" not in response.text
            and "onclick" not in response.text
        )


async def test_secure_cookie_when_the_public_url_is_https(temp_gateway, merchant):
    gateway = await temp_gateway(public_url="https://pay.example")
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        page = await http.get("/dashboard/login")
        pre = _set_cookie(page, LOGIN_COOKIE)
        assert "Secure" in pre
        http.cookies = httpx.Cookies({LOGIN_COOKIE: pre.split(";")[0].split("=", 1)[1]})  # sent by hand:
        response = await http.post(  # the client keeps Secure cookies from plain http to itself
            "/dashboard/login", data={"csrf": csrf_of(page.text), "api_key": merchant[1]}
        )
    assert response.status_code == 303
    assert "Secure" in _set_cookie(response, COOKIE)


async def test_signed_out_visitors_are_sent_to_sign_in(dash):
    client = await dash()
    for path in ("/dashboard/payments", "/dashboard/keys", "/dashboard/payments/inv_x?a=1"):
        response = await client.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith(
            "/dashboard/login?next="
        )
    client.http.cookies = httpx.Cookies({COOKIE: "x" * 43})
    assert (await client.get("/dashboard/payments")).status_code == 303


async def test_wrong_key_is_401_and_opens_nothing(dash, db):
    client = await dash()
    response = await client.sign_in("le_live_" + "0" * 40)
    assert response.status_code == 401 and "not valid" in response.text
    assert COOKIE not in client.http.cookies


async def test_sign_in_form_needs_its_token(dash, merchant):
    client = await dash()
    await client.get("/dashboard/login")
    response = await client.http.post("/dashboard/login", data={"csrf": "forged", "api_key": merchant[1]})
    assert response.status_code == 403 and 'data-error="csrf_failed"' in response.text
    stranger = await dash()  # a token from another browser does not match this one's cookie
    page = await client.get("/dashboard/login")
    response = await stranger.http.post(
        "/dashboard/login", data={"csrf": csrf_of(page.text), "api_key": merchant[1]}
    )
    assert response.status_code == 403
    assert COOKIE not in stranger.http.cookies


async def test_sign_in_is_rate_limited_per_address(temp_gateway, merchant):
    gateway = await temp_gateway(dashboard_signin_rate_limit="3/minute")
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        token = csrf_of((await http.get("/dashboard/login")).text)
        statuses = [
            (
                await http.post("/dashboard/login", data={"csrf": token, "api_key": "le_live_wrong"})
            ).status_code
            for _ in range(3)
        ]
        limited = await http.post("/dashboard/login", data={"csrf": token, "api_key": merchant[1]})
    assert statuses == [401, 401, 401]
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1


async def test_state_changing_forms_reject_a_missing_or_foreign_csrf_token(dash, make_merchant, db):
    _, key_a = await make_merchant("A")
    _, key_b = await make_merchant("B")
    a, b = await dash(), await dash()
    await a.sign_in(key_a)
    await b.sign_in(key_b)
    for csrf in ("", "0" * 64, b.csrf):
        response = await a.post("/dashboard/keys", {"name": "sneaky"}, csrf=csrf)
        assert response.status_code == 403 and 'data-error="csrf_failed"' in response.text
    keys = await a.get("/dashboard/keys")
    assert "sneaky" not in keys.text
    json_body = await a.http.post("/dashboard/keys", json={"csrf": a.csrf, "name": "x"})
    assert json_body.status_code == 400  # only forms; a JSON body is not one


async def test_sign_out_ends_the_session(dash, merchant, db):
    client = await dash()
    await client.sign_in(merchant[1])
    token = client.http.cookies[COOKIE]
    client.http.cookies = httpx.Cookies({COOKIE: token})  # as the replay below sends it: works now
    assert (await client.get("/dashboard/payments")).status_code == 200
    refused = await client.post("/dashboard/logout", csrf="nope")
    assert refused.status_code == 403
    response = await client.post("/dashboard/logout")
    assert response.status_code == 303 and response.headers["location"] == "/dashboard/login?signed_out=1"
    assert 'boltgate_dashboard=""' in _set_cookie(response, COOKIE) or "Max-Age=0" in _set_cookie(
        response, COOKIE
    )
    async with db.reading() as session:
        assert await session.get(DashboardSession, hashlib.sha256(token.encode()).hexdigest()) is None
    client.http.cookies = httpx.Cookies({COOKIE: token})  # the old cookie, kept by a thief
    assert (await client.get("/dashboard/payments")).status_code == 303


@pytest.mark.parametrize("column", ["last_seen_at", "expires_at"])
async def test_idle_and_absolute_expiry(dash, merchant, db, column):
    client = await dash()
    await client.sign_in(merchant[1])
    token_hash = hashlib.sha256(client.http.cookies[COOKIE].encode()).hexdigest()
    assert (await client.get("/dashboard/payments")).status_code == 200
    past = utcnow() - timedelta(days=8) if column == "last_seen_at" else utcnow() - timedelta(seconds=1)
    async with db.writing() as session:
        await session.execute(
            update(DashboardSession).where(DashboardSession.token_hash == token_hash).values({column: past})
        )
    assert (await client.get("/dashboard/payments")).status_code == 303
    async with db.reading() as session:
        assert await session.get(DashboardSession, token_hash) is None


async def test_revoking_the_key_signed_in_with_ends_the_session(dash, api, merchant):
    client = await dash()
    await client.sign_in(merchant[1])
    keys = (await api.get("/api/merchant/keys", headers=auth(merchant[1]))).json()["items"]
    assert (await client.post(f"/dashboard/keys/{keys[0]['id']}/revoke")).status_code == 303
    assert (await client.get("/dashboard/payments")).status_code == 303


async def test_after_sign_in_goes_only_to_a_dashboard_page(dash, merchant):
    client = await dash()
    page = await client.get("/dashboard/login")
    for target, expected in (
        ("/dashboard/keys", "/dashboard/keys"),
        ("https://evil.example/", "/dashboard/payments"),
        ("//evil.example/dashboard/", "/dashboard/payments"),
    ):
        fresh = await dash()
        page = await fresh.get("/dashboard/login")
        response = await fresh.http.post(
            "/dashboard/login", data={"csrf": csrf_of(page.text), "api_key": merchant[1], "next": target}
        )
        assert response.headers["location"] == expected


LINK = re.compile(r"(http://\S+/dashboard/login/link\?token=\S+)")


async def _ask_link(client, email: str) -> httpx.Response:
    page = await client.get("/dashboard/login")
    assert 'id="email-form"' in page.text
    return await client.http.post("/dashboard/login/email", data={"csrf": csrf_of(page.text), "email": email})


async def test_email_link_signs_in_once(dash, api, make_merchant, smtp, db):
    merchant_id, key = await make_merchant("Mail Shop")
    email = f"owner-{merchant_id[-6:].lower()}@shop.example"
    await set_email(api, smtp, key, email)
    me = await api.get("/api/merchant/me", headers=auth(key))
    assert (me.json()["email"], me.json()["emailPending"]) == (email, None)
    before = len(smtp.messages)
    client = await dash()
    answer = await _ask_link(client, email)
    assert answer.status_code == 200 and "If that address belongs to an account" in answer.text
    message = (await smtp.wait_for(before + 1))[before]
    assert message.recipients == [email] and message.message["From"] == "boltgate@example.test"
    link = LINK.search(message.text).group(1)
    token = link.split("token=")[1]
    async with db.reading() as session:
        stored = list(
            await session.scalars(
                select(DashboardLoginLink).where(
                    DashboardLoginLink.merchant_id == merchant_id, DashboardLoginLink.purpose == "sign_in"
                )
            )
        )
    assert [row.token_hash for row in stored] == [hashlib.sha256(token.encode()).hexdigest()]

    opened = await client.http.get(link.removeprefix(str(client.http.base_url).rstrip("/")))
    assert opened.status_code == 200 and 'id="link-form"' in opened.text  # a click, not the GET, signs in
    assert "Mail Shop" in opened.text  # the page names the account the link opens
    used = await client.http.post(
        "/dashboard/login/link", data={"csrf": csrf_of(opened.text), "token": token}
    )
    assert used.status_code == 303 and COOKIE in client.http.cookies
    assert "Mail Shop" in (await client.get("/dashboard/payments")).text

    again = await dash()
    page = await again.http.get("/dashboard/login/link?token=" + token)
    assert page.status_code == 400 and 'data-error="sign_in_link_invalid"' in page.text
    login = await again.http.get("/dashboard/login")
    reused = await again.http.post(
        "/dashboard/login/link", data={"csrf": csrf_of(login.text), "token": token}
    )
    assert reused.status_code == 400 and 'data-error="sign_in_link_invalid"' in reused.text


async def test_expired_link_and_unknown_email(dash, api, make_merchant, smtp, db):
    merchant_id, key = await make_merchant("Late Shop")
    email = f"late-{merchant_id[-6:].lower()}@shop.example"
    await set_email(api, smtp, key, email)
    client = await dash()
    unknown = await _ask_link(client, "nobody-" + email)
    before = len(smtp.messages)
    known = await _ask_link(client, email)
    assert unknown.status_code == known.status_code == 200 and unknown.text == known.text
    message = (await smtp.wait_for(before + 1))[before]
    assert message.recipients == [email]  # and nothing was sent for the unknown address
    token = LINK.search(message.text).group(1).split("token=")[1]
    async with db.writing() as session:
        await session.execute(
            update(DashboardLoginLink)
            .where(DashboardLoginLink.merchant_id == merchant_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    page = await client.http.get("/dashboard/login/link?token=" + token)
    assert page.status_code == 400 and "Late Shop" not in page.text
    login = await client.http.get("/dashboard/login")
    late = await client.http.post("/dashboard/login/link", data={"csrf": csrf_of(login.text), "token": token})
    assert late.status_code == 400
    bad = await _ask_link(client, "not an email")
    assert bad.status_code == 400


async def test_merchant_email_is_validated(api, merchant):
    response = await api.patch("/api/merchant/me", json={"email": "nope"}, headers=auth(merchant[1]))
    assert response.status_code == 400 and response.json()["error"] == "validation_error"
    cleared = await api.patch("/api/merchant/me", json={"email": None}, headers=auth(merchant[1]))
    assert cleared.status_code == 200 and cleared.json()["email"] is None


async def test_email_sign_in_is_off_without_smtp(client, merchant):
    page = await client.get("/dashboard/login")
    assert 'id="email-form"' not in page.text
    response = await client.post(
        "/dashboard/login/email", data={"csrf": csrf_of(page.text), "email": "a@b.example"}
    )
    assert response.status_code == 404
