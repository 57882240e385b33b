"""What every HTTP backend shares: one pooled ``httpx.AsyncClient`` per backend, TLS pinned to the
node's own certificate when one is given, and transport failures mapped into the error tree.

- A pinned certificate (``cert=``: a file path, PEM text, or base64url DER as lndconnect writes
  it) is the only trust anchor; the host name is not checked against it, because node
  certificates name ``localhost`` and whatever addresses the node knew when it made them (the pin
  is the stronger check). A certificate that does not match is :class:`LightningRejected`
  naming the backend: it is a configuration error, not an outage.
- Without a pin, https uses the system's CAs (custodial APIs, LNbits behind a public certificate).
- Refused connections, resets and 5xx are :class:`LightningUnavailable`; no answer within the
  timeout is :class:`LightningTimeout`; 401/403 and other 4xx are :class:`LightningRejected`
  (with the backend's own message, shortened); a body that is not the JSON expected is
  :class:`LightningProtocolError`. Messages never include request headers or URLs with secrets.
"""

from __future__ import annotations

import base64
import binascii
import ssl
from pathlib import Path
from typing import Any

import httpx
import orjson

from boltgate.kit.netguard import AddressNotAllowed, GuardedTransport
from boltgate.lightning.base import (
    LightningProtocolError,
    LightningRejected,
    LightningTimeout,
    LightningUnavailable,
)
from boltgate.lightning.connection import Connection, ConnectionUrlError

MAX_BODY = 4 * 1024 * 1024
CERTIFICATE_MISMATCH = "the TLS certificate presented does not match the configured one (cert=)"
# failures before the request left: nothing was sent (a payment was not made)
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def load_cert(kind: str, value: str, *, allow_files: bool = True) -> str:
    """PEM text of a pinned certificate given as a path, PEM text or base64(url) DER. A merchant's
    own connection (``allow_files=False``) may not name files on the gateway's host."""
    text = value.strip()
    if "-----BEGIN CERTIFICATE-----" in text:
        return text
    if text.startswith(("/", "~", ".")):
        if not allow_files:
            raise ConnectionUrlError(
                f"{kind}: give the certificate itself (PEM or base64url DER), not a path"
            )
        path = Path(text).expanduser()
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConnectionUrlError(
                f"{kind}: cannot read the TLS certificate file ({exc.strerror})"
            ) from None
        if b"-----BEGIN CERTIFICATE-----" in data:
            return data.decode("ascii", "replace")
        der = data
    else:
        try:
            der = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            raise ConnectionUrlError(f"{kind}: cert is neither a file path, PEM nor base64url DER") from None
    try:
        return ssl.DER_cert_to_PEM_cert(der)
    except (ValueError, TypeError):
        raise ConnectionUrlError(f"{kind}: cert is not a certificate") from None


def tls_context(kind: str, cert: str | None, *, allow_files: bool = True) -> ssl.SSLContext | bool:
    if cert is None:
        return True
    pem = load_cert(kind, cert, allow_files=allow_files)
    context = ssl.create_default_context()
    context.check_hostname = False  # the pinned certificate is the trust anchor (module docstring)
    # a pinned certificate signed by a CA of the node's own (CLNRest's server.pem) is trusted as such
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    try:
        context.load_verify_locations(cadata=pem)
    except ssl.SSLError:
        raise ConnectionUrlError(f"{kind}: the TLS certificate cannot be loaded") from None
    return context


def verify_of(connection: Connection) -> ssl.SSLContext | bool:
    """How the connection's TLS is checked: ``cert=`` pinned, else the system's CAs (True); False
    for plain HTTP (``tls=0``)."""
    if not connection.tls:
        return False
    return tls_context(connection.kind, connection.param("cert"), allow_files=connection.guard is None)


def client(
    connection: Connection, *, headers: dict[str, str] | None = None, auth: Any = None
) -> httpx.AsyncClient:
    """A pooled client for this backend: ``cert=`` pinned, ``timeout=`` applied, no redirects."""
    verify = verify_of(connection)
    limits = httpx.Limits(max_connections=20, max_keepalive_connections=10)
    transport = None
    if connection.guard is not None:  # a merchant's backend: every connection's address is checked
        context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(trust_env=False)
        transport = GuardedTransport(connection.guard, limits, context)
    return httpx.AsyncClient(
        verify=verify,
        timeout=httpx.Timeout(connection.timeout),
        headers=headers or {},
        auth=auth,
        follow_redirects=False,
        limits=limits,
        trust_env=False,
        transport=transport,
    )


def transport_error(kind: str, exc: Exception) -> Exception:
    """The error-tree exception for a transport failure (the caller raises it ``from None``)."""
    if isinstance(exc, httpx.TimeoutException):
        return LightningTimeout("no answer in time", backend=kind)
    if _caused_by(exc, AddressNotAllowed):
        return LightningRejected("its address is not one the gateway may connect to", backend=kind)
    if is_certificate_failure(exc):
        return LightningRejected(CERTIFICATE_MISMATCH, backend=kind)
    if isinstance(exc, httpx.TransportError):
        return LightningUnavailable(f"cannot be reached ({type(exc).__name__})", backend=kind)
    return LightningUnavailable(f"request failed ({type(exc).__name__})", backend=kind)


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and up to five of its causes (``__cause__`` or ``__context__``)."""
    found: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(found) < 6:
        found.append(seen)
        seen = seen.__cause__ or seen.__context__
    return found


def is_certificate_failure(exc: BaseException) -> bool:
    """Whether the peer's TLS certificate was refused (anywhere in the exception's chain)."""
    return any(
        isinstance(e, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(e)
        for e in _chain(exc)
    )


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    return any(isinstance(e, kind) for e in _chain(exc))


def status_error(kind: str, response: httpx.Response) -> Exception | None:
    """The error-tree exception for a non-2xx answer, None for 2xx."""
    code = response.status_code
    if 200 <= code < 300:
        return None
    said = _said(response)
    if code in (401, 403):
        return LightningRejected(f"refused the credentials (HTTP {code}{said})", backend=kind)
    if code == 429 or code >= 500:
        return LightningUnavailable(f"answered HTTP {code}{said}", backend=kind)
    return LightningRejected(f"refused the request (HTTP {code}{said})", backend=kind)


def error_body(response: httpx.Response) -> Any:
    """The JSON of an error answer (its first 64 KiB), None when it is not JSON."""
    try:
        return orjson.loads(response.content[:65536])
    except orjson.JSONDecodeError:
        return None


def _said(response: httpx.Response) -> str:
    """The backend's own error message, shortened, when it gave one in JSON."""
    body = error_body(response)
    if isinstance(body, dict):
        for key in ("message", "detail", "error", "reason"):
            value = body.get(key)
            if isinstance(value, dict):
                value = value.get("message")
            if isinstance(value, str) and value:
                return f": {value[:200]}"
    return ""


def json_of(kind: str, response: httpx.Response) -> Any:
    """The JSON body of a 2xx answer; the mapped error otherwise."""
    error = status_error(kind, response)
    if error is not None:
        raise error
    if len(response.content) > MAX_BODY:
        raise LightningProtocolError("answered with an oversized body", backend=kind)
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise LightningProtocolError(
            f"answered HTTP {response.status_code} with a body that is not JSON", backend=kind
        ) from None


async def send(http: httpx.AsyncClient, kind: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request; a transport failure is raised as an error of the tree, any answer returned."""
    try:
        return await http.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise transport_error(kind, exc) from None


async def request(http: httpx.AsyncClient, kind: str, method: str, url: str, **kwargs: Any) -> Any:
    """Send and decode: the JSON of a 2xx answer, or an error of the tree."""
    return json_of(kind, await send(http, kind, method, url, **kwargs))


def field(kind: str, body: Any, name: str, kind_of: type | tuple[type, ...]) -> Any:
    """``body[name]`` of the expected type, or :class:`LightningProtocolError`."""
    if not isinstance(body, dict):
        raise LightningProtocolError(
            f"answered {type(body).__name__} where an object was expected", backend=kind
        )
    value = body.get(name)
    if not isinstance(value, kind_of) or (isinstance(value, bool) and bool not in _types(kind_of)):
        raise LightningProtocolError(f"answered without a valid {name!r}", backend=kind)
    return value


def _types(kind_of: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind_of if isinstance(kind_of, tuple) else (kind_of,)
