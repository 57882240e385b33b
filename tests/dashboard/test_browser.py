"""The dashboard in real headless Chromium (Debian's, driven by Playwright), against a gateway on
loopback: sign in, payments and filters, a payment's timeline and redelivery, API keys, sign-out
and the back button, CSRF, and sign-in by an emailed link through the SMTP sink.

``BOLTGATE_SCREENSHOTS=1`` saves the screenshots of docs/img/ (otherwise they are left alone).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, expect

from tests.checkout.test_browser import browser  # the shared Chromium fixture
from tests.conftest import ROOT, Gateway
from tests.dashboard.conftest import new_payment, pay, set_email
from tests.helpers import auth

__all__ = ["browser"]
SHOTS = ROOT / "docs" / "img"


async def _shot(page: Page, name: str) -> None:
    if os.environ.get("BOLTGATE_SCREENSHOTS") == "1":
        await page.screenshot(path=SHOTS / name, full_page=True)


@pytest.fixture
async def page(browser: Browser, dash_gateway: Gateway) -> AsyncIterator[tuple[Page, list[str]]]:
    ctx = await browser.new_context(base_url=dash_gateway.base_url, viewport={"width": 1280, "height": 860})
    tab = await ctx.new_page()
    problems: list[str] = []
    tab.on(
        "console",
        lambda msg: (
            problems.append(msg.text) if msg.type == "error" and "status of 4" not in msg.text else None
        ),
    )
    tab.on("pageerror", lambda exc: problems.append(str(exc)))
    yield tab, problems
    await ctx.close()


async def _sign_in(tab: Page, key: str) -> None:
    await tab.goto("/dashboard/payments")
    await expect(tab).to_have_url(re.compile(r"/dashboard/login\?next="))
    await tab.fill("#api_key", key)
    await tab.click("#key-form button[type=submit]")
    await expect(tab).to_have_url(re.compile(r"/dashboard/payments$"))


async def test_payments_filter_timeline_and_redeliver(page, api, make_merchant, receiver):
    tab, problems = page
    _, key = await make_merchant("Café Lumière")
    url = receiver.behave("/dash-browser")
    assert (await api.post("/api/webhooks", json={"url": url}, headers=auth(key))).status_code == 201
    paid = None
    for i, (description, amount) in enumerate(
        (("Two coffees", "7.50"), ("Croissant box", "18.00"), ("Beans 1 kg", "24.00"))
    ):
        made = await new_payment(
            api, key, f"order-10{i}", description=description, amount=amount, customerEmail="ana@example.com"
        )
        if i == 1:
            paid = made
            await pay(api, made)
    assert paid is not None
    received = await receiver.wait_for("/dash-browser", 4)

    await _sign_in(tab, key)
    await expect(tab.locator("#payments tbody tr")).to_have_count(3)
    await expect(tab.locator("#merchant-name")).to_have_text("Café Lumière")
    await _shot(tab, "dashboard-payments.png")

    await tab.select_option("#status", "paid")
    await tab.click("#filters button[type=submit]")
    await expect(tab.locator("#payments tbody tr")).to_have_count(1)
    await expect(tab.locator("#payments tbody tr a")).to_have_text("order-101")
    await tab.fill("#q", "beans")
    await tab.select_option("#status", "")
    await tab.click("#filters button[type=submit]")
    await expect(tab.locator("#payments tbody tr a")).to_have_text("order-102")

    await tab.goto("/dashboard/payments?status=paid")
    await tab.click("text=order-101")
    await expect(tab.locator("#payment-status")).to_have_text("paid")
    await expect(tab.locator("#timeline .event")).to_have_count(2)
    await expect(tab.locator("#timeline .delivery[data-status=succeeded]")).to_have_count(2, timeout=5000)
    await tab.reload()
    await _shot(tab, "dashboard-payment.png")
    await tab.locator("#timeline .event[data-type='payment.completed'] button.redeliver").click()
    await expect(tab.locator("#redelivered")).to_be_visible()
    again = await receiver.wait_for("/dash-browser", 5)
    completed = [
        r
        for r in received
        if r.json["event"] == "payment.completed" and r.json["data"]["invoiceId"] == paid["invoiceId"]
    ]
    assert again[4].json["id"] == completed[0].json["id"]

    await tab.goto("/dashboard/revenue")
    await expect(tab.locator("#sats-chart svg rect.bar")).to_have_count(30)
    await _shot(tab, "dashboard-revenue.png")
    assert problems == []  # no script error, no Content-Security-Policy violation


async def test_create_and_revoke_a_key(page, api, merchant):
    tab, problems = page
    await _sign_in(tab, merchant[1])
    await tab.click("text=API keys")
    await tab.fill("#name", "warehouse")
    await tab.click("#key-create button[type=submit]")
    secret = await tab.locator("#key-value").input_value()
    assert secret.startswith("le_live_")
    assert (await api.get("/api/merchant/me", headers=auth(secret))).status_code == 200
    await tab.goto("/dashboard/keys")
    assert secret not in await tab.content()  # shown once
    tab.once("dialog", lambda dialog: dialog.accept())
    await tab.locator("#keys tr", has_text="warehouse").locator("button.revoke").click()
    await expect(tab.locator("#key-revoked")).to_be_visible()
    await expect(tab.locator("#keys tr[data-state=revoked]", has_text="warehouse")).to_have_count(1)
    assert (await api.get("/api/merchant/me", headers=auth(secret))).status_code == 401
    assert problems == []


async def test_sign_out_and_the_back_button_shows_nothing_private(page, api, merchant):
    tab, _ = page
    await new_payment(api, merchant[1], "private-order-77")
    await _sign_in(tab, merchant[1])
    await expect(tab.locator("#payments")).to_contain_text("private-order-77")
    await tab.click("#sign-out")
    await expect(tab.locator("#signed-out")).to_be_visible()
    await tab.go_back()
    await tab.wait_for_load_state()
    await expect(tab.locator("#api_key")).to_be_visible()
    assert "private-order-77" not in await tab.content()
    await tab.goto("/dashboard/payments")
    await expect(tab).to_have_url(re.compile(r"/dashboard/login"))


async def test_a_forged_csrf_token_is_refused(page, merchant):
    tab, _ = page
    await _sign_in(tab, merchant[1])
    await tab.goto("/dashboard/keys")
    await tab.fill("#name", "forged")
    await tab.eval_on_selector("#key-create input[name=csrf]", "el => { el.value = 'forged' }")
    await tab.click("#key-create button[type=submit]")
    await expect(tab.locator("#error[data-error=csrf_failed]")).to_be_visible()
    await tab.goto("/dashboard/keys")
    await expect(tab.locator("#keys")).not_to_contain_text("forged")


async def test_magic_link_sign_in_through_smtp(page, api, make_merchant, smtp):
    tab, problems = page
    merchant_id, key = await make_merchant("Link Shop")
    email = f"link-{merchant_id[-6:].lower()}@shop.example"
    await set_email(api, smtp, key, email)
    before = len(smtp.messages)
    await tab.goto("/dashboard/login")
    await _shot(tab, "dashboard-login.png")
    await tab.fill("#email", email)
    await tab.click("#email-form button[type=submit]")
    await expect(tab.locator("#email-sent")).to_be_visible()
    message = (await smtp.wait_for(before + 1))[before]
    link = re.search(r"(http://\S+/dashboard/login/link\?token=\S+)", message.text).group(1)
    await tab.goto(link)
    await tab.click("#use-link")
    await expect(tab).to_have_url(re.compile(r"/dashboard/payments$"))
    await expect(tab.locator("#merchant-name")).to_have_text("Link Shop")
    assert problems == []
