"""Fixtures of the dashboard tests: a gateway with SMTP pointed at a loopback sink, and a browser-like
HTTP client that signs in through the forms (cookies, CSRF tokens) as a person would."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway
from tests.dashboard.smtp_sink import SmtpSink
from tests.helpers import auth

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, html[:500]
    return found.group(1)


@pytest.fixture(scope="module")
async def smtp() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink()
    await sink.start()
    yield sink
    await sink.stop()


@pytest.fixture(scope="module")
async def dash_gateway(make_gateway: Callable[..., Awaitable[Gateway]], smtp: SmtpSink) -> Gateway:
    return await make_gateway(
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_starttls=False,
        smtp_from="boltgate@example.test",
        dashboard_signin_rate_limit="100000/second",
    )


class Dash:
    """A cookie-keeping client of one gateway's dashboard."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.csrf = ""

    async def sign_in(self, key: str) -> httpx.Response:
        page = await self.http.get("/dashboard/login")
        assert page.status_code == 200
        response = await self.http.post(
            "/dashboard/login",
            data={"csrf": csrf_of(page.text), "api_key": key, "next": "/dashboard/payments"},
        )
        if response.status_code == 303:
            landing = await self.http.get("/dashboard/payments")
            self.csrf = csrf_of(landing.text)
        return response

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.get(path, **kwargs)

    async def post(
        self, path: str, data: dict[str, str] | None = None, csrf: str | None = None
    ) -> httpx.Response:
        return await self.http.post(path, data={"csrf": self.csrf if csrf is None else csrf, **(data or {})})


@pytest.fixture
async def dash(dash_gateway: Gateway) -> AsyncIterator[Callable[[], Awaitable[Dash]]]:
    """Fresh dashboard clients (each its own cookie jar) of the module's gateway."""
    clients: list[httpx.AsyncClient] = []

    async def make() -> Dash:
        http = httpx.AsyncClient(base_url=dash_gateway.base_url, timeout=10)
        clients.append(http)
        return Dash(http)

    yield make
    for http in clients:
        await http.aclose()


@pytest.fixture
async def api(dash_gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=dash_gateway.base_url, timeout=10) as http:
        yield http


async def new_payment(api: httpx.AsyncClient, key: str, order_id: str, **fields: Any) -> dict[str, Any]:
    body = {"orderId": order_id, "amount": "10.00", "currency": "EUR", **fields}
    response = await api.post("/api/payments", json=body, headers=auth(key))
    assert response.status_code == 201, response.text
    return dict(response.json())


async def pay(api: httpx.AsyncClient, payment: dict[str, Any]) -> None:
    """Pay a payment on the dev node and wait until the settlement watcher has marked it paid."""
    paid = await api.post("/api/dev/pay", json={"invoice": payment["lightningInvoice"]})
    assert paid.status_code == 200 and paid.json()["status"] == "settled", paid.text
    for _ in range(200):
        status = await api.get(f"/checkout/{payment['invoiceId']}/status")
        if status.json()["status"] == "paid":
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{payment['invoiceId']} was not marked paid")


CONFIRM_LINK = re.compile(r"(http://\S+/dashboard/email/confirm\?token=\S+)")


async def confirmation_link(smtp: SmtpSink, before: int, email: str) -> str:
    """The confirmation link of the first message sent to ``email`` after the ``before``-th."""
    for _ in range(50):
        messages = await smtp.wait_for(before + 1)
        for message in messages[before:]:
            if message.recipients == [email] and (found := CONFIRM_LINK.search(message.text)):
                return found.group(1)
        before = len(messages)
    raise AssertionError(f"no confirmation link sent to {email}")


async def confirm(http: httpx.AsyncClient, link: str) -> httpx.Response:
    """Open a confirmation link and press its button, as its recipient would."""
    page = await http.get(link.removeprefix(str(http.base_url).rstrip("/")))
    if page.status_code != 200:
        return page
    token = link.split("token=")[1]
    return await http.post("/dashboard/email/confirm", data={"csrf": csrf_of(page.text), "token": token})


async def set_email(api: httpx.AsyncClient, smtp: SmtpSink, key: str, email: str) -> None:
    """Set a merchant's sign-in address through the API and confirm it from the mailbox."""
    email = email.lower()  # what the gateway keeps
    before = len(smtp.messages)
    patched = await api.patch("/api/merchant/me", json={"email": email.upper()}, headers=auth(key))
    assert patched.status_code == 200 and patched.json()["emailPending"] == email, patched.text
    link = await confirmation_link(smtp, before, email)
    async with httpx.AsyncClient(base_url=str(api.base_url), timeout=10) as browser:
        confirmed = await confirm(browser, link)
    assert confirmed.status_code == 200 and 'id="email-confirmed"' in confirmed.text, confirmed.text
