"""Connection URLs: one setting chooses the backend and says how to reach it.

=========================  ==========================================================================
``dev://``                 the built-in dev node (dev mode only)
``lnd-rest://host:8080``   LND's REST API: ``?macaroon=`` (hex, base64url or a file path) and
                           ``&cert=`` (tls.cert path, PEM, or base64url DER); ``lndconnect://`` too
``clnrest://host:3010``    Core Lightning's CLNRest: ``?rune=`` and ``&cert=``
``cln-rpc:///path/rpc``    Core Lightning's JSON-RPC unix socket (``lightning-rpc``)
``phoenixd://:pw@host``    phoenixd's HTTP API, password as the URL's password (port 9740)
``lnbits://host?key=``     an LNbits wallet: its invoice (receive) or admin key
``nostr+walletconnect://`` a NWC wallet service (NIP-47); ``nwc://`` too
``opennode://?key=``       OpenNode (``api.opennode.com``; ``host`` to use another)
``strike://?key=``         Strike (``api.strike.me``; ``host`` to use another)
=========================  ==========================================================================

Common query parameters: ``tls=0`` speaks plain HTTP (https is the default for HTTP backends),
``timeout=`` seconds per request. Secrets (the URL's password and the ``macaroon``, ``rune``,
``key``, ``secret``, ``password`` and ``token`` parameters) are replaced by ``***`` whenever a URL
is shown: :func:`redact` is the only way a connection URL reaches a log line or a response.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

KINDS = {
    "dev": "dev",
    "lnd-rest": "lnd-rest",
    "lndconnect": "lnd-rest",
    "clnrest": "clnrest",
    "cln-rpc": "cln-rpc",
    "phoenixd": "phoenixd",
    "lnbits": "lnbits",
    "nostr+walletconnect": "nwc",
    "nwc": "nwc",
    "opennode": "opennode",
    "strike": "strike",
}
SECRET_PARAMS = frozenset({"macaroon", "rune", "key", "secret", "password", "token", "api_key"})
MASK = "***"


class ConnectionUrlError(ValueError):
    """A connection URL that cannot be used; the message never contains its secrets."""


@dataclass(frozen=True)
class Connection:
    kind: str  # one of KINDS' values
    scheme: str  # as written (lndconnect, nwc… keep their own conventions)
    host: str | None
    port: int | None
    path: str
    username: str | None
    password: str | None = field(repr=False)
    params: dict[str, list[str]] = field(repr=False)
    url: str = field(repr=False)
    # Networks besides the public internet this connection may reach, checked at every connection
    # (boltgate.kit.netguard); None: unrestricted (a backend the operator configured).
    guard: tuple[IPv4Network | IPv6Network, ...] | None = field(default=None, repr=False)

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.params.get(name)
        return values[-1] if values else default

    def params_of(self, name: str) -> list[str]:
        return list(self.params.get(name, []))

    def check_params(self, known: frozenset[str] | set[str]) -> None:
        """:class:`ConnectionUrlError` for the first parameter the backend does not know."""
        unknown = sorted(set(self.params) - known)
        if unknown:
            raise ConnectionUrlError(
                f"{self.kind}: unknown parameter {unknown[0][:32]!r} (known: {', '.join(sorted(known))})"
            )

    def flag(self, name: str, default: bool) -> bool:
        """A yes/no parameter: ``1``/``0`` (``true``/``false``, ``yes``/``no`` too)."""
        value = (self.param(name) or ("1" if default else "0")).lower()
        if value not in {"0", "1", "true", "false", "yes", "no"}:
            raise ConnectionUrlError(f"{self.kind}: {name} must be 0 or 1")
        return value in {"1", "true", "yes"}

    def seconds(self, name: str, default: float, *, most: float, least: float | None = None) -> float:
        """A parameter counting seconds, up to ``most``: above 0, or at least ``least`` when given."""
        raw = self.param(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConnectionUrlError(f"{self.kind}: {name} must be a number of seconds") from None
        low = 0.0 if least is None else least
        above = value > low if least is None else value >= low
        if not (above and value <= most):
            raise ConnectionUrlError(f"{self.kind}: {name} must be between {low:g} and {most:g} seconds")
        return value

    @property
    def tls(self) -> bool:
        return self.flag("tls", True)

    @property
    def timeout(self) -> float:
        return self.seconds("timeout", 15.0, most=300)

    def base_url(self, default_port: int, *, default_host: str | None = None) -> str:
        host = self.host or default_host
        if not host:
            raise ConnectionUrlError(f"{self.kind}: the URL needs a host")
        shown = f"[{host}]" if ":" in host else host
        port = self.port or default_port
        return f"{'https' if self.tls else 'http'}://{shown}:{port}"

    def redacted(self) -> str:
        return redact(self.url)


def parse(url: str) -> Connection:
    """The connection a URL describes, or :class:`ConnectionUrlError` saying what is wrong."""
    if not isinstance(url, str) or not url.strip():
        raise ConnectionUrlError("the connection URL is empty")
    url = url.strip()
    if len(url) > 8192:
        raise ConnectionUrlError("the connection URL is longer than 8192 characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise ConnectionUrlError("the connection URL contains control characters")
    scheme, sep, _rest = url.partition("://")
    if not sep:
        raise ConnectionUrlError(f"not a connection URL (expected one of {', '.join(sorted(KINDS))}://…)")
    scheme = scheme.lower()
    if scheme not in KINDS:
        raise ConnectionUrlError(f"unknown backend {scheme[:32]!r}: use one of {', '.join(sorted(KINDS))}")
    try:
        parts = urlsplit(url)
        port = parts.port
        params = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
    except ValueError as exc:
        raise ConnectionUrlError(f"{KINDS[scheme]}: malformed URL ({_safe(str(exc))})") from None
    if parts.fragment:
        raise ConnectionUrlError(f"{KINDS[scheme]}: the URL must not have a #fragment")
    return Connection(
        kind=KINDS[scheme],
        scheme=scheme,
        host=parts.hostname,
        port=port,
        path=unquote(parts.path),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        params=params,
        url=url,
    )


def redact(url: str) -> str:
    """The URL with every secret replaced by ``***`` (safe to log and to show)."""
    try:
        parts = urlsplit(url.strip())
        params = parse_qs(parts.query, keep_blank_values=True)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        scheme = url.partition("://")[0][:32]
        return f"{scheme}://{MASK}"
    netloc = ""
    if parts.username or parts.password is not None:
        netloc = (quote(unquote(parts.username)) if parts.username else "") + (
            f":{MASK}" if parts.password is not None else ""
        )
        netloc += "@"
    netloc += f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    query = urlencode(
        [(k, MASK if k.lower() in SECRET_PARAMS else v) for k, vs in params.items() for v in vs], safe="*:/@"
    )
    shown = f"{parts.scheme}://{netloc}{parts.path}"
    if query:
        shown += f"?{query}"
    # the wallet pubkey of a NWC URL is public, the secret is a query parameter
    return shown


def _safe(message: str) -> str:
    """An exception message about a URL, shortened and without anything after '@' or '?'."""
    return message.split("?")[0].split("@")[-1][:80]
