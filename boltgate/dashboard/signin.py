"""Signing in and out of the dashboard: an API key, or a link sent by email (when SMTP is set).

The sign-in forms carry a token bound to a short-lived pre-session cookie, so another site
cannot sign a browser into an account of its choosing (login CSRF); attempts are rate limited
per client address; the answer to an email request never says whether the address is known.
The link that confirms a merchant's address (see ``auth``) opens here too, with the same
click-through page and form token.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import Response
from limits import RateLimitItem
from limits import parse as parse_limit

from boltgate.context import Context
from boltgate.dashboard import auth, mail, session
from boltgate.dashboard.models import CONFIRM_EMAIL
from boltgate.dashboard.web import (
    error_page,
    guard_form,
    read_form,
    redirect,
    render,
    safe_next,
)
from boltgate.errors import RateLimited
from boltgate.web import Ctx, client_address

log = structlog.get_logger(__name__)
router = APIRouter(include_in_schema=False)
PRE_SESSION_SECONDS = 3600


@lru_cache(maxsize=4)
def _rate(limit: str) -> RateLimitItem:
    return parse_limit(limit)


def _login_page(
    request: Request, ctx: Context, status: int = 200, template: str = "login.html", **values: Any
) -> Response:
    """A sign-in form, with a fresh pre-session cookie unless the browser has one."""
    token = request.cookies.get(session.LOGIN_COOKIE) or session.new_token()
    response = render(
        ctx,
        template,
        status,
        login_csrf=session.csrf_for(ctx.settings, token),
        next=safe_next(request.query_params.get("next")),
        **values,
    )
    session.set_cookie(response, ctx.settings, session.LOGIN_COOKIE, token, PRE_SESSION_SECONDS)
    return response


async def _signin_form(request: Request, ctx: Context) -> dict[str, str] | Response:
    """A sign-in form's body once its token matches the pre-session cookie and the rate allows."""
    form = await read_form(request)
    if form is None:
        return error_page(ctx, 400, "malformed_form", "The form could not be read.")
    pre = request.cookies.get(session.LOGIN_COOKIE)
    if not pre or not session.csrf_ok(ctx.settings, pre, form.get("csrf")):
        return error_page(ctx, 403, "csrf_failed", "This form has expired: reload the sign-in page.")
    client = client_address(request)
    try:
        await ctx.limiter.check("dashboard-signin:" + client, _rate(ctx.settings.dashboard_signin_rate_limit))
    except RateLimited as exc:
        response = error_page(ctx, 429, "rate_limited", "Too many sign-in attempts: wait a minute.")
        response.headers.update(exc.headers)
        return response
    return form


async def _signed_in(
    ctx: Context, merchant_id: str, key_id: str | None, target: str, email: str | None = None
) -> Response:
    async with ctx.db.writing() as db_session:
        token = await session.open_session(
            db_session, ctx.settings, merchant_id, key_id, ctx.clock(), email=email
        )
    response = redirect(safe_next(target))
    session.set_cookie(
        response, ctx.settings, session.COOKIE, token, ctx.settings.dashboard_session_max_seconds
    )
    session.clear_cookie(response, ctx.settings, session.LOGIN_COOKIE)
    return response


@router.get("/dashboard")
async def home(request: Request, ctx: Ctx) -> Response:
    return redirect("/dashboard/payments")


@router.get("/dashboard/login")
async def login_page(request: Request, ctx: Ctx) -> Response:
    if await session.find(ctx.db, ctx.settings, session.cookie_of(request), ctx.clock()) is not None:
        return redirect(safe_next(request.query_params.get("next")))
    return _login_page(request, ctx, signed_out=request.query_params.get("signed_out") == "1")


@router.post("/dashboard/login")
async def login_with_key(request: Request, ctx: Ctx) -> Response:
    form = await _signin_form(request, ctx)
    if isinstance(form, Response):
        return form
    async with ctx.db.reading() as db_session:
        found = await auth.check_key(db_session, form.get("api_key", ""))
    if found is None:
        return _login_page(request, ctx, 401, error="That API key is not valid (or has been revoked).")
    return await _signed_in(ctx, found[0], found[1], form.get("next", ""))


@router.post("/dashboard/login/email")
async def login_by_email(request: Request, ctx: Ctx) -> Response:
    if not mail.configured(ctx.settings):
        return error_page(ctx, 404, "email_sign_in_disabled", "Sign-in by email is not set up here.")
    form = await _signin_form(request, ctx)
    if isinstance(form, Response):
        return form
    email = auth.clean_email(form.get("email", ""))
    if email is None:
        return _login_page(request, ctx, 400, error="Enter an email address like shop@example.com.")
    async with ctx.db.writing() as db_session:
        issued = await auth.issue_links(db_session, email, ctx.clock())
    if issued:
        base = ctx.settings.base_url + "/dashboard/login/link?token="
        links = [(name, base + token) for name, token in issued]
        minutes = int(auth.LINK_LIFETIME.total_seconds() // 60)
        mail.send_later(ctx.settings, mail.sign_in_message(ctx.settings, email, links, minutes))
    return render(ctx, "email_sent.html")


@router.get("/dashboard/login/link")
async def link_page(request: Request, ctx: Ctx) -> Response:
    token = request.query_params.get("token", "")[:100]
    async with ctx.db.reading() as db_session:
        account = await auth.peek_link(db_session, token, ctx.clock())
    if account is None:
        return error_page(
            ctx, 400, "sign_in_link_invalid", "This sign-in link has expired or was already used."
        )
    name, email = account
    return _login_page(
        request, ctx, template="link.html", token=token, account_name=name, account_email=email
    )


@router.post("/dashboard/login/link")
async def login_with_link(request: Request, ctx: Ctx) -> Response:
    form = await _signin_form(request, ctx)
    if isinstance(form, Response):
        return form
    async with ctx.db.writing() as db_session:
        used = await auth.use_link(db_session, form.get("token", ""), ctx.clock())
    if used is None:
        return error_page(
            ctx, 400, "sign_in_link_invalid", "This sign-in link has expired or was already used."
        )
    merchant_id, email = used
    return await _signed_in(ctx, merchant_id, None, "/dashboard/payments", email=email)


CONFIRM_INVALID = (
    "This confirmation link has expired, was already used, or was replaced by a newer request. "
    "Set the address again to get a new link."
)


@router.get("/dashboard/email/confirm")
async def confirm_page(request: Request, ctx: Ctx) -> Response:
    token = request.query_params.get("token", "")[:100]
    async with ctx.db.reading() as db_session:
        account = await auth.peek_link(db_session, token, ctx.clock(), CONFIRM_EMAIL)
    if account is None:
        return error_page(ctx, 400, "confirmation_link_invalid", CONFIRM_INVALID)
    name, email = account
    return _login_page(
        request, ctx, template="confirm.html", token=token, account_name=name, account_email=email
    )


@router.post("/dashboard/email/confirm")
async def confirm_email(request: Request, ctx: Ctx) -> Response:
    form = await _signin_form(request, ctx)
    if isinstance(form, Response):
        return form
    async with ctx.db.writing() as db_session:
        confirmed = await auth.confirm_email(db_session, form.get("token", ""), ctx.clock())
    if confirmed is None:
        return error_page(ctx, 400, "confirmation_link_invalid", CONFIRM_INVALID)
    log.info("merchant_email_confirmed", merchant_id=confirmed[0])
    return render(ctx, "confirmed.html", email=confirmed[1])


@router.post("/dashboard/logout")
async def logout(request: Request, ctx: Ctx) -> Response:
    got = await guard_form(request, ctx)
    if isinstance(got, Response):
        if got.status_code == 401:  # already ended: nothing to close
            response = redirect("/dashboard/login?signed_out=1")
            session.clear_cookie(response, ctx.settings)
            return response
        return got
    me, _ = got
    async with ctx.db.writing() as db_session:
        await session.close(db_session, me.token_hash)
    response = redirect("/dashboard/login?signed_out=1")
    session.clear_cookie(response, ctx.settings)
    response.headers["Clear-Site-Data"] = '"cache"'
    return response
