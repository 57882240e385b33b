"""The hosted checkout page over real HTTP (no browser): what is rendered, in which state, with
which security headers, in which language; and the friendly 404s."""

from __future__ import annotations

import asyncio
import html
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import update

from boltgate.kit.clock import utcnow
from boltgate.payment.models import Payment
from tests.helpers import auth

ORDER = {
    "amount": "25.00",
    "currency": "USD",
    "description": "Two coffees & a croissant",
    "customerEmail": "buyer@example.com",
    "customerName": "Ada Buyer",
    "successUrl": "https://shop.example/thanks?ref=abc",
    "cancelUrl": "https://shop.example/cart",
    "metadata": {"internalNote": "vip-customer-42"},
}


async def _payment(client, key, order_id, **changes):
    body = {**ORDER, "orderId": order_id, **changes}
    response = await client.post("/api/payments", json=body, headers=auth(key))
    assert response.status_code == 201, response.text
    return response.json()


def _main_attr(page: str, name: str) -> str:
    found = re.search(rf'<main id="checkout"[^>]* {name}="([^"]*)"', page)
    assert found, name
    return html.unescape(found.group(1))


async def test_open_page_shows_everything_the_payer_needs(client, merchant, db):
    _, key = merchant
    await client.patch(
        "/api/merchant/me", json={"logoUrl": "https://cdn.example/logo.png"}, headers=auth(key)
    )
    payment = await _payment(client, key, "page-open")
    assert urlsplit(payment["hostedCheckoutUrl"]).path == f"/checkout/{payment['invoiceId']}"
    response = await client.get(f"/checkout/{payment['invoiceId']}")
    assert response.status_code == 200 and response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    assert 'lang="en"' in page and response.headers["content-language"] == "en"
    assert "$25.00" in page and f"{payment['amountSats']:,} sats" in page
    assert "Two coffees &amp; a croissant" in page  # escaped
    assert "Test Shop" in page and 'src="https://cdn.example/logo.png"' in page
    assert page.count(payment["lightningInvoice"]) >= 2  # the copy field and the wallet link
    assert f'data-qr-text="LIGHTNING:{payment["lightningInvoice"].upper()}"' in page
    assert "<svg" in page and "QR code of the Lightning invoice" in page
    assert _main_attr(page, "data-status") == "open"
    assert 'href="https://shop.example/cart"' in page
    assert re.search(r'<time id="countdown" datetime="[^"]+Z">1[45]:\d\d</time>', page)
    assert '<noscript><meta http-equiv="refresh" content="5"></noscript>' in page  # works without JS
    assert "Demo" in page  # the dev node: no real bitcoin
    success = urlsplit(_main_attr(page, "data-success-url"))
    assert success.netloc == "shop.example" and parse_qs(success.query) == {
        "ref": ["abc"],
        "invoiceId": [payment["invoiceId"]],
        "orderId": ["page-open"],
    }
    # only what the payer sees: no customer data, metadata or keys
    for secret in ("buyer@example.com", "Ada Buyer", "vip-customer-42", key, "le_live_", "le_test_"):
        assert secret not in page


async def test_security_headers_and_nonce(client, merchant):
    _, key = merchant
    payment = await _payment(client, key, "page-csp")
    response = await client.get(f"/checkout/{payment['invoiceId']}")
    csp = response.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    assert "default-src 'none'" in csp and "script-src 'self' 'nonce-" in csp and "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp and response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    scripts = re.findall(r"<script[^>]*>", response.text)
    assert scripts and all(f'nonce="{nonce}"' in tag and "src=" in tag for tag in scripts)
    assert "<script>" not in response.text and " on" not in re.sub(r">[^<]*<", "><", response.text).replace(
        " one", ""
    )  # no inline handlers (onclick=…)
    again = await client.get(f"/checkout/{payment['invoiceId']}")
    assert re.search(r"'nonce-([^']+)'", again.headers["content-security-policy"]).group(1) != nonce
    for asset in re.findall(r'(?:src|href)="(/static/checkout/[^"]+)"', response.text):
        served = await client.get(asset)
        assert served.status_code == 200 and len(served.content) > 100, asset


async def test_frame_ancestors_are_configurable_per_merchant(client, make_merchant, make_gateway):
    _, key = await make_merchant()
    payment = await _payment(client, key, "page-frame")
    bad = await client.patch(
        "/api/merchant/me", json={"checkoutFrameAncestors": ["https://shop.example/path"]}, headers=auth(key)
    )
    assert bad.status_code == 400 and "checkoutFrameAncestors" in str(bad.json()["errors"])
    ok = await client.patch(
        "/api/merchant/me",
        json={"checkoutFrameAncestors": ["https://Shop.Example", "https://*.shop.example:8443"]},
        headers=auth(key),
    )
    assert ok.status_code == 200 and ok.json()["checkoutFrameAncestors"] == [
        "https://shop.example",
        "https://*.shop.example:8443",
    ]
    response = await client.get(f"/checkout/{payment['invoiceId']}")
    assert (
        "frame-ancestors https://shop.example https://*.shop.example:8443"
        in response.headers["content-security-policy"]
    )
    assert "x-frame-options" not in response.headers

    # the operator's default applies to merchants without their own list
    other = await make_gateway(checkout_frame_ancestors="https://embed.example")
    _, key2 = await make_merchant()
    try:
        await _default_ancestors(other, key2)
    finally:
        await other.stop()  # its database connections are not needed by later tests


async def _default_ancestors(other, key2):
    async with httpx.AsyncClient(base_url=other.base_url) as http:
        second = await _payment(http, key2, "page-frame-default")
        page = await http.get(f"/checkout/{second['invoiceId']}")
        assert "frame-ancestors https://embed.example" in page.headers["content-security-policy"]
        await http.patch("/api/merchant/me", json={"checkoutFrameAncestors": []}, headers=auth(key2))
        page = await http.get(f"/checkout/{second['invoiceId']}")
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


async def test_language_from_query_then_accept_language(client, merchant):
    _, key = merchant
    invoice = (await _payment(client, key, "page-lang", currency="EUR", amount="1234.50"))["invoiceId"]
    german = await client.get(f"/checkout/{invoice}", headers={"accept-language": "fr;q=0.5, de-AT;q=0.9"})
    assert german.headers["content-language"] == "de" and "1.234,50" in german.text
    assert "Lightning-Rechnung" in german.text
    spanish = await client.get(f"/checkout/{invoice}?lang=es", headers={"accept-language": "de"})
    assert spanish.headers["content-language"] == "es" and "Factura Lightning" in spanish.text
    french = await client.get(f"/checkout/{invoice}", headers={"accept-language": "fr-CA"})
    assert french.headers["content-language"] == "fr" and "Facture Lightning" in french.text
    unknown = await client.get(f"/checkout/{invoice}?lang=xx", headers={"accept-language": "ja, *;q=0.1"})
    assert unknown.headers["content-language"] == "en"
    too_long = await client.get(f"/checkout/{invoice}?lang=" + "d" * 100)
    assert too_long.status_code == 400  # a bad query parameter is still a clear 400


async def test_paid_page_redirects_even_without_javascript(client, merchant):
    _, key = merchant
    payment = await _payment(client, key, "page-paid")
    paid = await client.post("/api/dev/pay", json={"invoice": payment["lightningInvoice"]})
    assert paid.status_code == 200
    for _ in range(100):
        status = (await client.get(f"/checkout/{payment['invoiceId']}/status")).json()
        if status["status"] == "paid":
            break
        await asyncio.sleep(0.05)
    page = (await client.get(f"/checkout/{payment['invoiceId']}")).text
    assert _main_attr(page, "data-status") == "paid"
    assert re.search(r'<section id="state-paid" class="state done">', page)  # shown
    assert re.search(r'<section id="state-open" class="state" hidden>', page)
    refresh = re.search(r'<meta http-equiv="refresh" content="3;url=([^"]+)">', page)
    target = urlsplit(html.unescape(refresh.group(1)))
    assert target.netloc == "shop.example" and parse_qs(target.query)["invoiceId"] == [payment["invoiceId"]]
    assert "<noscript><meta" not in page  # no more self-refresh


async def test_expired_page(client, merchant, db):
    _, key = merchant
    payment = await _payment(client, key, "page-expired")
    async with db.writing() as session:
        past = utcnow() - timedelta(hours=1)
        await session.execute(
            update(Payment).where(Payment.id == payment["invoiceId"]).values(expires_at=past)
        )
    page = (await client.get(f"/checkout/{payment['invoiceId']}")).text
    assert _main_attr(page, "data-status") == "expired"
    assert "This invoice has expired" in page and 'href="https://shop.example/cart"' in page
    assert '<section id="state-expired" class="state done">' in page


async def test_unknown_and_malformed_invoice_ids(client):
    for invoice_id in ("inv_doesnotexist00000000", "nope", "inv_" + "a" * 500, "inv_%27%3B--", "%00"):
        page = await client.get(f"/checkout/{invoice_id}", headers={"accept": "text/html"})
        assert page.status_code == 404, invoice_id
        assert page.headers["content-type"].startswith("text/html") and "Payment not found" in page.text
        assert "content-security-policy" in page.headers
        as_json = await client.get(f"/checkout/{invoice_id}", headers={"accept": "application/json"})
        assert as_json.status_code == 404 and as_json.json()["error"] == "payment_not_found"
        status = await client.get(f"/checkout/{invoice_id}/status")
        assert status.status_code == 404 and status.json()["error"] == "payment_not_found"


async def test_invoice_ids_cannot_be_guessed(client, merchant):
    _, key = merchant
    ids = {(await _payment(client, key, f"page-ids-{n}", amount="1.00"))["invoiceId"] for n in range(20)}
    assert len(ids) == 20
    for invoice_id in ids:
        assert re.fullmatch(r"inv_[0-9A-Za-z]{20}", invoice_id)  # 20 base62 chars: ~119 random bits
    assert len({i[4:6] for i in ids}) > 5  # no shared prefix or counter


async def test_merchant_branding_validation(client, merchant):
    _, key = merchant
    before = (await client.get("/api/merchant/me", headers=auth(key))).json()
    for body in (
        {"logoUrl": "http://insecure.example/logo.png"},
        {"logoUrl": "javascript:alert(1)"},
        {"name": ""},
        {"name": None},
        {"checkoutFrameAncestors": ["*"]},
        {"checkoutFrameAncestors": ["https://a.example'; script-src *"]},
        {"unknown": True},
    ):
        response = await client.patch("/api/merchant/me", json=body, headers=auth(key))
        assert response.status_code == 400, (body, response.text)
    assert (await client.get("/api/merchant/me", headers=auth(key))).json() == before
