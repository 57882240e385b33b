"""``GET /privacy`` and ``GET /terms``: the operator's privacy policy and terms of service.

The texts are files the operator provides (``BOLTGATE_PRIVACY_POLICY_FILE``, ``BOLTGATE_TERMS_FILE``):
``.md``/``.markdown`` files are rendered from a small, safe Markdown subset (headings, paragraphs,
lists, emphasis, code, http(s)/mailto links; everything else is shown as text, all HTML escaped),
any other file as plain text. Without a file the page says the operator has not published one —
a gateway never invents legal terms. ``Accept: application/json`` gets ``{title, published,
format, content}`` with the file's text as it is. A file is re-read when it changes.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from boltgate.errors import ServiceUnavailable
from boltgate.web import Ctx, json_response, problems

log = structlog.get_logger(__name__)
router = APIRouter(tags=["platform"])
MAX_BYTES = 1 << 20

_LINK = re.compile(r"\[([^\]\n]{1,500})\]\(((?:https?://|mailto:)[^\s)]{1,2000})\)")
_INLINE = [
    (re.compile(r"`([^`\n]+)`"), r"<code>\1</code>"),
    (re.compile(r"\*\*([^*\n]+)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![*\w])\*([^*\n]+)\*(?![*\w])"), r"<em>\1</em>"),
]
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*$")
_BULLET = re.compile(r"^\s*[-*+]\s+(.*)$")
_NUMBERED = re.compile(r"^\s*\d{1,9}[.)]\s+(.*)$")


def _inline(text: str) -> str:
    out = html.escape(text, quote=True)
    # links first: their URLs are already escaped, and quotes cannot break out of href="…"
    out = _LINK.sub(lambda m: f'<a href="{m.group(2)}" rel="nofollow noopener">{m.group(1)}</a>', out)
    for pattern, replacement in _INLINE:
        out = pattern.sub(replacement, out)
    return out


def render_markdown(text: str) -> str:
    """HTML of the Markdown subset described above (never passes raw HTML through)."""
    blocks: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []
    list_tag = ""

    def flush() -> None:
        nonlocal list_tag
        if paragraph:
            blocks.append("<p>" + "<br>\n".join(_inline(line) for line in paragraph) + "</p>")
            paragraph.clear()
        if items:
            blocks.append(
                f"<{list_tag}>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + f"</{list_tag}>"
            )
            items.clear()

    for raw in text.splitlines():
        line = raw.rstrip()
        heading, bullet, numbered = _HEADING.match(line), _BULLET.match(line), _NUMBERED.match(line)
        if not line.strip():
            flush()
        elif heading:
            flush()
            level = len(heading.group(1))
            blocks.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif bullet or numbered:
            tag = "ul" if bullet else "ol"
            if paragraph or (items and tag != list_tag):
                flush()
            list_tag = tag
            items.append((bullet or numbered).group(1))  # type: ignore[union-attr]
        elif items and raw[:1].isspace():
            items[-1] += " " + line.strip()  # a list item's continuation line
        else:
            if items:
                flush()
            paragraph.append(line.strip())
    flush()
    return "\n".join(blocks)


def render_text(text: str) -> str:
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n".join(
        "<p>" + "<br>\n".join(html.escape(line) for line in p.splitlines()) + "</p>" for p in paragraphs if p
    )


def _read(request: Request, path: Path) -> str:
    """The file's text, kept per app (``app.state.legal_texts``) until the file changes."""
    cache: dict[Path, tuple[float, int, str]] | None = getattr(request.app.state, "legal_texts", None)
    if cache is None:
        cache = request.app.state.legal_texts = {}
    try:
        stat = path.stat()
        hit = cache.get(path)
        if hit is not None and hit[0] == stat.st_mtime and hit[1] == stat.st_size:
            return hit[2]
        if stat.st_size > MAX_BYTES:
            raise OSError(f"larger than {MAX_BYTES} bytes")
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        log.error("legal_text_unreadable", path=str(path), error=str(exc))
        raise ServiceUnavailable(
            "The operator's text cannot be read right now", code="legal_text_unavailable"
        ) from None
    cache[path] = (stat.st_mtime, stat.st_size, text)
    return text


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The text as an HTML page, or as JSON with Accept: application/json",
        "content": {
            "text/html": {"schema": {"type": "string"}},
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["title", "published", "format", "content"],
                    "properties": {
                        "title": {"type": "string"},
                        "published": {"type": "boolean"},
                        "format": {"type": "string", "enum": ["markdown", "text"]},
                        "content": {"type": "string"},
                    },
                }
            },
        },
    },
    **problems(503),
}

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font:16px/1.55 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222}}
code{{background:#f3f3f3;padding:0 .2em}}</style></head>
<body><main>
{body}
</main></body></html>
"""


def _page(request: Request, ctx: Ctx, title: str, path: Path | None) -> Response:
    operator = ctx.settings.base_url
    if path is None:
        text, fmt = f"The operator of this gateway ({operator}) has not published a {title.lower()}.", "text"
    else:
        text = _read(request, path)
        fmt = "markdown" if path.suffix.lower() in (".md", ".markdown") else "text"
    accept = request.headers.get("accept", "")
    if "application/json" in accept and "text/html" not in accept:
        return json_response({"title": title, "published": path is not None, "format": fmt, "content": text})
    body = render_markdown(text) if fmt == "markdown" else render_text(text)
    if path is None:
        body = f"<h1>{html.escape(title)}</h1>\n{body}"
    headers = {
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff",
    }
    return HTMLResponse(_PAGE.format(title=html.escape(title), body=body), headers=headers)


@router.get(
    "/privacy",
    response_class=HTMLResponse,
    responses=_RESPONSES,
    summary="The operator's privacy policy",
)
async def privacy(request: Request, ctx: Ctx) -> Response:
    return _page(request, ctx, "Privacy policy", ctx.settings.privacy_policy_file)


@router.get(
    "/terms",
    response_class=HTMLResponse,
    responses=_RESPONSES,
    summary="The operator's terms of service",
)
async def terms(request: Request, ctx: Ctx) -> Response:
    return _page(request, ctx, "Terms of service", ctx.settings.terms_file)
