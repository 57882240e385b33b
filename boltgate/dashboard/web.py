"""The dashboard's HTTP plumbing: rendering, security headers, forms, the session guard and CSRF.

Every page is ``Cache-Control: no-store`` (the back button after sign-out must not show a
merchant's data from the cache) and carries a Content-Security-Policy that runs only this
server's script file: no inline script, no inline style, no framing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from boltgate.context import Context
from boltgate.dashboard import mail, session
from boltgate.dashboard.session import Signed

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
TEMPLATES = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
ASSET_VERSION = hashlib.sha256(
    b"".join(path.read_bytes() for path in sorted(STATIC_DIR.iterdir()) if path.is_file())
).hexdigest()[:12]
MAX_FORM_BYTES = 16_384
CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # sign-in links carry their token in the URL
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def render(
    ctx: Context,
    template: str,
    status: int = 200,
    me: Signed | None = None,
    **values: Any,
) -> HTMLResponse:
    html = TEMPLATES.get_template(template).render(
        me=me,
        csrf=me.csrf if me else "",
        asset_version=ASSET_VERSION,
        email_enabled=mail.configured(ctx.settings),
        **values,
    )
    return HTMLResponse(html, status_code=status, headers=dict(HEADERS))


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=dict(HEADERS))


def to_login(request: Request) -> RedirectResponse:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    return redirect("/dashboard/login?" + urlencode({"next": target}))


def safe_next(value: str | None) -> str:
    """Where to go after sign-in: a dashboard path only (never another site)."""
    if value and value.startswith("/dashboard/") and "//" not in value and "\\" not in value:
        return value
    return "/dashboard/payments"


def error_page(ctx: Context, status: int, code: str, message: str, me: Signed | None = None) -> HTMLResponse:
    return render(ctx, "error.html", status, me=me, code=code, message=message)


async def read_form(request: Request) -> dict[str, str] | None:
    """An ``application/x-www-form-urlencoded`` body (last value of each name); None if malformed."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        return None
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return None
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=100))
    except (UnicodeDecodeError, ValueError):
        return None


async def current(request: Request, ctx: Context) -> Signed | None:
    return await session.find(ctx.db, ctx.settings, session.cookie_of(request), ctx.clock())


async def guard(request: Request, ctx: Context) -> Signed | Response:
    """The signed-in merchant, or the redirect to the sign-in page."""
    me = await current(request, ctx)
    return to_login(request) if me is None else me


async def guard_form(request: Request, ctx: Context) -> tuple[Signed, dict[str, str]] | Response:
    """A state-changing form: a live session, a well-formed body and the session's CSRF token."""
    me = await current(request, ctx)
    if me is None:
        return error_page(ctx, 401, "not_signed_in", "Your session has ended: sign in again.")
    form = await read_form(request)
    if form is None:
        return error_page(ctx, 400, "malformed_form", "The form could not be read.", me)
    if not session.csrf_matches(me.csrf_accepted, form.get("csrf")):
        return error_page(
            ctx, 403, "csrf_failed", "This form has expired or did not come from this dashboard.", me
        )
    return me, form
