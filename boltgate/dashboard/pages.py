"""The dashboard's reading pages: payments (filters, search, paging), a payment's timeline with
its webhook deliveries (and redelivery), and revenue charts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from boltgate.context import Context
from boltgate.dashboard import charts, queries
from boltgate.dashboard.web import error_page, guard, guard_form, redirect, render
from boltgate.errors import BoltgateError
from boltgate.payment.states import Status
from boltgate.web import Ctx
from boltgate.webhook import service as webhook_service

router = APIRouter(include_in_schema=False)
STATUSES = [status.value for status in Status]
MAX_PAGE = 10_000


def _day(value: str, field: str, errors: dict[str, str]) -> datetime | None:
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        errors[field] = "use a date like 2026-12-31"
        return None
    if not 2000 <= day.year <= 9000:  # the inclusive "to" adds a day: 9999-12-31 would overflow
        errors[field] = "a date between the years 2000 and 9000"
        return None
    return day


def parse_filters(params: Any) -> tuple[queries.PaymentFilter, dict[str, str]]:
    errors: dict[str, str] = {}
    status = params.get("status", "")
    if status and status not in STATUSES:
        errors["status"] = f"one of {', '.join(STATUSES)}"
    since = _day(params.get("from", ""), "from", errors)
    until = _day(params.get("to", ""), "to", errors)
    query = params.get("q", "").strip()
    if len(query) > 200:
        errors["q"] = "at most 200 characters"
    page_text = params.get("page", "1")
    digits = page_text.isascii() and page_text.isdecimal() and len(page_text) <= 6
    page = int(page_text) if digits and 1 <= int(page_text) <= MAX_PAGE else 0
    if not page:
        errors["page"] = f"a page number from 1 to {MAX_PAGE}"
    filters = queries.PaymentFilter(
        status=status or None,
        since=since,
        until=until + timedelta(days=1) if until else None,  # "to" is inclusive
        query=query or None,
        page=page or 1,
    )
    return filters, errors


@router.get("/dashboard/payments")
async def payments(request: Request, ctx: Ctx) -> Response:
    me = await guard(request, ctx)
    if isinstance(me, Response):
        return me
    params = request.query_params
    filters, errors = parse_filters(params)
    form = {name: params.get(name, "") for name in ("status", "from", "to", "q")}
    if errors:
        return render(
            ctx, "payments.html", 400, me=me, items=[], total=0, errors=errors, form=form, statuses=STATUSES
        )
    async with ctx.db.reading() as session:
        items, total = await queries.search_payments(session, me.merchant_id, filters)
    pages = max(1, -(-total // queries.PAGE_SIZE))
    keep = {k: v for k, v in form.items() if v}
    return render(
        ctx,
        "payments.html",
        me=me,
        items=items,
        total=total,
        errors={},
        form=form,
        statuses=STATUSES,
        page=filters.page,
        pages=pages,
        prev_url=f"?{urlencode({**keep, 'page': filters.page - 1})}" if filters.page > 1 else None,
        next_url=f"?{urlencode({**keep, 'page': filters.page + 1})}" if filters.page < pages else None,
    )


@router.get("/dashboard/payments/{payment_id}")
async def payment(request: Request, ctx: Ctx, payment_id: str) -> Response:
    me = await guard(request, ctx)
    if isinstance(me, Response):
        return me
    async with ctx.db.reading() as session:
        found = await queries.get_payment(session, me.merchant_id, payment_id[:64])
        events = await queries.timeline(session, me.merchant_id, found.id) if found else []
    if found is None:
        return error_page(ctx, 404, "payment_not_found", "No such payment.", me)
    return render(
        ctx,
        "payment.html",
        me=me,
        p=found,
        events=events,
        checkout_url=f"{ctx.settings.base_url}/checkout/{found.id}",
        redelivered=request.query_params.get("redelivered") == "1",
    )


@router.post("/dashboard/deliveries/{delivery_id}/redeliver")
async def redeliver(request: Request, ctx: Ctx, delivery_id: str) -> Response:
    got = await guard_form(request, ctx)
    if isinstance(got, Response):
        return got
    me, _ = got
    try:
        async with ctx.db.writing() as session:
            await webhook_service.redeliver(session, me.merchant_id, delivery_id[:64], ctx.clock())
            event_id = await queries.event_of_delivery(session, me.merchant_id, delivery_id[:64])
    except BoltgateError as exc:
        return error_page(ctx, exc.status, exc.code, exc.detail, me)
    ctx.wake.set()
    async with ctx.db.reading() as session:
        payment_id = await queries.invoice_of_event(session, me.merchant_id, event_id)
    if payment_id is None:
        return redirect("/dashboard/webhooks")
    return redirect(f"/dashboard/payments/{payment_id}?redelivered=1")


async def _revenue_values(ctx: Context, merchant_id: str) -> dict[str, Any]:
    now = ctx.clock()
    async with ctx.db.reading() as session:
        revenue = await queries.revenue(session, merchant_id, now)
        proxies = await queries.l402_revenue(session, merchant_id, now)
    days = revenue.days
    earning = [(p.proxy_id, p.name, p.sats) for p in proxies if p.total]
    series = charts.top_series(earning, days, "Other proxies")
    colours = {one.key: one.colour for one in series}
    per_day = [
        (day, [*(one.values[day] for one in series), sum(p.sats[day] for p in proxies)]) for day in days
    ]
    return {
        "since": days[0],
        "sats": charts.flow_figure("sats", days, revenue.sats.received, revenue.sats.refunded, "sats"),
        "fiat": [
            charts.flow_figure(currency.lower(), days, flow.received, flow.refunded, currency)
            for currency, flow in revenue.fiat.items()
        ],
        "l402_total": sum(p.total for p in proxies),
        "l402_chart": charts.stacked_chart(days, series, "L402 revenue per day, by proxy", "sats"),
        "l402_table": charts.figures_table(
            "l402-figures",
            "L402 sats per UTC day, by proxy",
            [*(s.name for s in series), "Total"],
            per_day,
            "sats",
        ),
        "proxies": [
            (p, charts.swatch(colours.get(p.proxy_id, charts.OTHER)) if p.total else None) for p in proxies
        ],
    }


@router.get("/dashboard/revenue")
async def revenue_page(request: Request, ctx: Ctx) -> Response:
    me = await guard(request, ctx)
    if isinstance(me, Response):
        return me
    return render(ctx, "revenue.html", me=me, **await _revenue_values(ctx, me.merchant_id))
