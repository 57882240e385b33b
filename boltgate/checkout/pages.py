"""The hosted checkout page and the public buy links (server-rendered HTML, Jinja2).

``GET /checkout/{invoiceId}`` renders the whole page on the server: the QR code (inline SVG),
amounts, countdown and the state (open, paid, expired). Without JavaScript it refreshes itself
every 5 s; ``/static/checkout/checkout.js`` adds live status over Server-Sent Events (polling
every 3 s as the fallback), a ticking countdown, copy buttons and the redirect to ``successUrl``.
Only what the payer may see is rendered: no metadata, no customer data, no merchant secrets.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from limits import RateLimitItem
from limits import parse as parse_limit
from sqlalchemy import select

from boltgate.checkout import i18n, products, qr, security
from boltgate.checkout.endpoints import INVOICE_ID
from boltgate.context import Context
from boltgate.errors import BoltgateError, NotFound
from boltgate.merchant.models import Merchant
from boltgate.payment.models import Payment
from boltgate.web import Ctx, client_address, ip_rate_limit, problems

STATIC_DIR = Path(__file__).parent / "static"
_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
ASSET_VERSION = hashlib.sha256(
    b"".join(path.read_bytes() for path in sorted(STATIC_DIR.iterdir()) if path.is_file())
).hexdigest()[:12]
Lang = Annotated[str | None, Query(max_length=35, description="language: en, de, es, fr")]

router = APIRouter(tags=["checkout"], include_in_schema=True)


@dataclass(frozen=True, slots=True)
class Page:
    lang: str
    nonce: str
    frame_ancestors: list[str]


def _page(ctx: Context, request: Request, lang: str | None, merchant: Merchant | None = None) -> Page:
    ancestors = ctx.settings.checkout_frame_ancestors
    if merchant is not None and merchant.frame_ancestors is not None:
        ancestors = merchant.frame_ancestors
    return Page(
        lang=i18n.negotiate(lang, request.headers.get("accept-language")),
        nonce=security.new_nonce(),
        frame_ancestors=list(ancestors),
    )


def _render(
    page: Page, template: str, status: int = 200, headers: dict[str, str] | None = None, **values: Any
) -> HTMLResponse:
    html = _TEMPLATES.get_template(template).render(
        lang=page.lang,
        t=i18n.Translator(page.lang),
        languages=i18n.languages(),
        nonce=page.nonce,
        asset_version=ASSET_VERSION,
        **values,
    )
    all_headers = security.page_headers(page.nonce, page.frame_ancestors)
    all_headers["Content-Language"] = page.lang
    all_headers.update(headers or {})
    return HTMLResponse(html, status_code=status, headers=all_headers)


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def with_params(url: str, **params: str) -> str:
    """``url`` with these query parameters added (replacing any of the same name)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query.extend(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def remaining_text(expires_at: datetime, now: datetime) -> str:
    """``m:ss`` (or ``h:mm:ss``) until expiry, as the script's countdown shows it."""
    left = max(0, int((expires_at - now).total_seconds()))
    hours, rest = divmod(left, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def page_state(status: str, expires_at: datetime, now: datetime) -> str:
    if status in ("paid", "refunded"):
        return "paid"
    if status == "expired" or expires_at <= now:
        return "expired"
    return "open"


async def _load(ctx: Context, invoice_id: str) -> tuple[Payment, Merchant] | None:
    if not INVOICE_ID.match(invoice_id):
        return None
    async with ctx.db.reading() as session:
        row = (
            await session.execute(
                select(Payment, Merchant)
                .join(Merchant, Merchant.id == Payment.merchant_id)
                .where(Payment.id == invoice_id)
            )
        ).first()
    return None if row is None else (row[0], row[1])


def _not_found(page: Page, title_key: str, body_key: str) -> HTMLResponse:
    return _render(page, "not_found.html", 404, title_key=title_key, body_key=body_key)


@router.get(
    "/checkout/{invoice_id}",
    response_class=HTMLResponse,
    responses={
        404: {"description": "No such payment (an HTML page, or a problem for Accept: application/json)"},
        **problems(429),
    },
    dependencies=[Depends(ip_rate_limit)],
    summary="The hosted checkout page of a payment (HTML)",
)
async def checkout_page(request: Request, ctx: Ctx, invoice_id: str, lang: Lang = None) -> Response:
    found = await _load(ctx, invoice_id)
    if found is None:
        if _wants_json(request):
            raise NotFound(f"payment {invoice_id} not found", code="payment_not_found")
        return _not_found(_page(ctx, request, lang), "not_found_title", "not_found_body")
    payment, merchant = found
    page = _page(ctx, request, lang, merchant)
    t = i18n.Translator(page.lang)
    now = ctx.clock()
    onchain_address: str | None = None  # no backend of this gateway offers on-chain addresses yet
    qr_text = qr.payment_uri(payment.payment_request, payment.amount_sats, onchain_address)
    success_url = (
        with_params(payment.success_url, invoiceId=payment.id, orderId=payment.order_id)
        if payment.success_url
        else None
    )
    return _render(
        page,
        "checkout.html",
        invoice_id=payment.id,
        order_id=payment.order_id,
        state=page_state(payment.status, payment.expires_at, now),
        expires_at=payment.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        remaining=remaining_text(payment.expires_at, now),
        merchant_name=merchant.name,
        logo_url=merchant.logo_url,
        is_demo=ctx.settings.lightning_backend == "dev",
        amount_text=t.money(payment.amount, payment.currency),
        sats=payment.amount_sats,
        sats_text=t.number(payment.amount_sats),
        description=payment.description,
        invoice=payment.payment_request,
        wallet_uri=f"lightning:{payment.payment_request}",
        qr_text=qr_text,
        qr_svg=qr.svg(qr_text, t("qr_label")),
        success_url=success_url,
        cancel_url=payment.cancel_url,
    )


@lru_cache(maxsize=8)
def _rate(limit: str) -> RateLimitItem:
    return parse_limit(limit)


async def _buy(request: Request, ctx: Context, product_id: str, lang: str | None) -> Response:
    product = await products.find_buyable(ctx, product_id)
    if product is None:
        return _not_found(_page(ctx, request, lang), "product_not_found_title", "product_not_found_body")
    client = client_address(request)
    try:
        await ctx.limiter.check("buy:" + client, _rate(ctx.settings.buy_rate_limit))
        payment = await products.buy(ctx, product)
    except BoltgateError as error:  # rates down, a price out of range, rate limited: a page, not JSON
        return _render(
            _page(ctx, request, lang),
            "not_found.html",
            error.status,
            headers=error.headers,
            title_key="unavailable_title",
            body_key="unavailable_body",
        )
    target = f"/checkout/{payment.id}"
    if lang:
        target = with_params(target, lang=i18n.negotiate(lang, None))
    return RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})


_HTML_PAGE = {"text/html": {"schema": {"type": "string"}}}


def _page_or_problem(status: int, description: str) -> dict[str, Any]:
    """A status /buy answers with an HTML page (the payer's browser) or, for what fails before the
    product is looked at (parameters, the per-IP limit, the Lightning node), a problem."""
    return {"description": description, "content": {**problems(status)[status]["content"], **_HTML_PAGE}}


_BUY_DOC: dict[str, Any] = {
    "response_class": RedirectResponse,
    "status_code": 303,
    "responses": {
        400: _page_or_problem(400, "Invalid parameters, or the product's price cannot be charged (page)"),
        404: {"description": "No such product, or not for sale (an HTML page)", "content": _HTML_PAGE},
        429: _page_or_problem(429, "Rate limited: this address asks too often, or starts too many payments"),
        502: _page_or_problem(502, "The Lightning backend refused or failed the invoice"),
        503: _page_or_problem(503, "Exchange rates or the Lightning backend unavailable"),
    },
    "dependencies": [Depends(ip_rate_limit)],  # and, per IP, BOLTGATE_BUY_RATE_LIMIT new payments
}


@router.get("/buy/{product_id}", summary="Buy a product: a new payment, then its checkout page", **_BUY_DOC)
async def buy_get(request: Request, ctx: Ctx, product_id: str, lang: Lang = None) -> Response:
    return await _buy(request, ctx, product_id, lang)


@router.post("/buy/{product_id}", summary="The same as GET, for an HTML form's button", **_BUY_DOC)
async def buy_post(request: Request, ctx: Ctx, product_id: str, lang: Lang = None) -> Response:
    return await _buy(request, ctx, product_id, lang)
