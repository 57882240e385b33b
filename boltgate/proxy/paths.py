"""The request path a paid proxy forwards, and the upstream URL it builds from it.

``ANY /l402/proxy/{proxyId}/{path}`` forwards ``{path}`` to the producer's ``targetBaseUrl``.
Whatever a client puts there must stay a path *under* that base: it may never climb out of the
base path (dot segments, encoded or not), never be read as another host (``//evil``,
``/http://evil``), and never mean one thing to boltgate's pricing and another to the upstream
server (encoded slashes and backslashes, empty segments, control characters, bad escapes). Such
paths are refused rather than cleaned up: a cleaned-up path would be priced as one resource and
served as another by an upstream that decodes differently.

Accepted paths are forwarded in the client's own percent-encoding (upstreams may care about
``%20`` vs ``+``), and the decoded form goes to :class:`~boltgate.proxy.pricing.PriceTable`.
Both functions are a handful of precompiled regex scans: about 3 µs each per request (timeit).
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote_to_bytes, urlsplit

__all__ = ["MAX_PATH_BYTES", "UnsafePath", "forwarded_path", "upstream_url"]

MAX_PATH_BYTES = 4096

# Raw bytes that never appear in an acceptable remainder: controls and space (not valid in a
# request target), backslash (some servers read it as '/'), and '?'/'#', which would end the path
# once the URL is rebuilt.
_RAW_REFUSED = re.compile(rb"[\x00-\x20\x7f\\?#]")
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_ENCODED_SEPARATOR = re.compile(rb"%(?:2[fF]|5[cC])")
_DECODED_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
_UNSAFE_FORWARDED = re.compile(r"[^\x21-\x7e]|[\\?#]")
# In the base too: parsers disagree about where an authority with a backslash or space ends.
_UNSAFE_BASE = re.compile(r"[\x00-\x20\x7f\\?#]")
# Query bytes kept as sent: RFC 3986 query characters and '%'; everything else gets encoded so
# that the query cannot carry a fragment, a space or raw non-ASCII upstream.
_QUERY_SAFE = "!$&'()*+,;=:@/?%-._~"


class UnsafePath(ValueError):
    """A proxied path boltgate refuses to forward; ``code`` is the stable error code for the 400."""

    def __init__(self, message: str, code: str = "invalid_proxy_path") -> None:
        super().__init__(message)
        self.code = code


def forwarded_path(raw_path: bytes, prefix: bytes) -> tuple[str, str]:
    """(path to append to the target's path, in the client's own percent-encoding, ASCII str;
    the percent-decoded path for pricing).

    ``raw_path`` is the ASGI scope's ``raw_path`` (no query), e.g.
    ``b"/l402/proxy/prx_1/forecast/New%20York"``; ``prefix`` is ``b"/l402/proxy/prx_1"``. The
    remainder after the prefix is ``""`` or starts with ``/``; ``""`` becomes ``"/"``.
    Raises :class:`UnsafePath` for anything that could escape or be read differently upstream.
    """
    if not raw_path.startswith(prefix):
        raise UnsafePath("the path is not under this proxy's prefix")
    rest = raw_path[len(prefix) :] or b"/"
    if rest[:1] != b"/":
        raise UnsafePath("the proxied path must be empty or start with '/' after the proxy id")
    if len(rest) > MAX_PATH_BYTES:
        raise UnsafePath(f"the proxied path is longer than {MAX_PATH_BYTES} bytes", "proxy_path_too_long")
    if not rest.isascii():
        raise UnsafePath("the proxied path contains raw non-ASCII bytes; percent-encode them")
    if bad := _RAW_REFUSED.search(rest):
        raise UnsafePath(f"the proxied path contains a forbidden character {bad.group().decode()!r}")
    if _BAD_ESCAPE.search(rest):
        raise UnsafePath("the proxied path contains an invalid percent escape ('%' needs two hex digits)")
    if _ENCODED_SEPARATOR.search(rest):
        raise UnsafePath("the proxied path contains an encoded slash or backslash (%2F, %5C)")
    decoded = unquote_to_bytes(rest)
    if _DECODED_CONTROL.search(decoded):
        raise UnsafePath("the proxied path contains an encoded control character (%00-%1F, %7F)")
    # No encoded slash is left, so decoded segments line up with the raw ones.
    segments = decoded[1:].split(b"/")
    if segments[-1] == b"":
        segments.pop()  # the root, or a single trailing slash, kept as sent
    for seg in segments:
        if seg == b"":
            raise UnsafePath("the proxied path has an empty segment ('//')")
        if seg in (b".", b".."):
            raise UnsafePath("the proxied path has a '.' or '..' segment (literal or percent-encoded)")
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsafePath("the proxied path does not decode to UTF-8") from None
    return rest.decode("ascii"), text


def upstream_url(target_base_url: str, forwarded: str, query: bytes) -> str:
    """``target_base_url`` + ``forwarded`` (from :func:`forwarded_path`) + ``?query`` if any.

    The forwarded part is only ever appended to the base *path* (it starts with a single ``/``
    and holds no ``?``, ``#``, ``\\`` or control characters), so it cannot become an authority;
    the result is split again and compared with the base anyway, because an upstream request
    to another host would be the worst bug this proxy can have.
    """
    base = urlsplit(target_base_url)
    if base.scheme not in ("http", "https") or not base.hostname or _UNSAFE_BASE.search(target_base_url):
        raise UnsafePath("the target must be an absolute http(s) URL without query", "invalid_target")
    if not forwarded.startswith("/") or forwarded.startswith("//") or _UNSAFE_FORWARDED.search(forwarded):
        raise UnsafePath("the forwarded path is not a safe path (use forwarded_path)")
    prefix = target_base_url[:-1] if target_base_url.endswith("/") else target_base_url
    url = prefix + forwarded
    if query:
        url += "?" + quote(query, safe=_QUERY_SAFE)
    got = urlsplit(url)
    base_path = base.path.rstrip("/") + "/"
    if (got.scheme, got.netloc) != (base.scheme, base.netloc) or not got.path.startswith(base_path):
        raise UnsafePath("the upstream URL would leave the target", "invalid_target")
    return url
