"""The "Payment" HTTP authentication scheme (MPP), Lightning ``charge`` intent: boltgate's codec.

Pure functions, no I/O; the 402 guard builds on them.

- **Challenge** (``WWW-Authenticate``): ``Payment id="…", realm="…", method="lightning",
  intent="charge", request="…", expires="…"`` with optional ``digest``, ``description`` and
  ``opaque``. ``request`` is base64url (no padding) of the JCS-canonical (RFC 8785) JSON
  ``{"amount": "<sats>", "currency": "sat", "methodDetails": {invoice, paymentHash, network}}``.
- **Stateless binding**: ``id`` is base64url(HMAC-SHA256(key, "realm|method|intent|request|
  expires|digest|opaque")), an absent field being an empty slot; ``description`` is not covered.
  boltgate stores nothing per challenge: :func:`verify_echo` recomputes the id from what the
  client echoes back.
- **Credential** (``Authorization``): ``Payment <base64url(JSON)>`` with
  ``{"challenge": {…echoed params…}, "payload": {"preimage": "<hex>"}}`` (modern, draft-00), or
  the legacy ``Payment method="lightning", preimage="<hex>"`` that names no challenge (the
  server finds the payment by sha256 of the preimage).
- **Receipt** (``Payment-Receipt``): base64url JSON naming the payment hash, never the preimage.

Byte-level behaviour follows Aperture's cross-implementation vectors (strict base64url that
still accepts padding, RFC 9110 quoted-strings, first occurrence of a repeated parameter wins,
receipt ``status`` ``"success"``) and what the Lightning Enable clients send and parse.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import rfc8785

__all__ = [
    "INTENT",
    "MAX_CREDENTIAL_CHARS",
    "METHOD",
    "PROBLEM_BASE",
    "PROBLEM_CODES",
    "SCHEME",
    "Challenge",
    "ChargeRequest",
    "Credential",
    "CredentialError",
    "LegacyCredential",
    "b64url_decode",
    "b64url_encode",
    "canonical_json",
    "canonicalize",
    "challenge_id",
    "decode_credential_json",
    "decode_request",
    "format_challenge",
    "format_challenge_params",
    "format_timestamp",
    "new_challenge",
    "parse_challenges",
    "parse_charge_request",
    "parse_credential",
    "parse_timestamp",
    "problem_type",
    "receipt",
    "request_param",
    "verify_echo",
]

SCHEME: Final = "Payment"
METHOD: Final = "lightning"
INTENT: Final = "charge"

PROBLEM_BASE: Final = "https://paymentauth.org/problems/"
# Slugs of the problem types boltgate reports (``type`` = PROBLEM_BASE + slug, see problem_type).
# ``method-unsupported`` is the one answered with 400 rather than 402.
PROBLEM_CODES: Final = frozenset(
    {
        "payment-required",
        "payment-expired",
        "verification-failed",
        "malformed-credential",
        "invalid-challenge",
        "invalid-preimage",
        "unknown-challenge",
        "expired-invoice",
        "method-unsupported",
    }
)

# A credential header longer than this is refused unread (a modern credential for one of
# boltgate's challenges is well under 2 KiB; the drafts ask servers to take at least 4 KB).
MAX_CREDENTIAL_CHARS: Final = 16 * 1024

# Emit order of the challenge parameters; the first five make a challenge complete.
PARAM_ORDER: Final = (
    "id",
    "realm",
    "method",
    "intent",
    "request",
    "expires",
    "digest",
    "description",
    "opaque",
)
_REQUIRED: Final = ("id", "realm", "method", "intent", "request")

_MAX_SAFE_INTEGER: Final = 2**53 - 1
_B64URL_RE: Final = re.compile(r"[A-Za-z0-9_-]*(={0,2})")
_TOKEN68_B64URL_RE: Final = re.compile(r"[A-Za-z0-9_-]+={0,2}")
_TOKEN68_RE: Final = re.compile(r"[A-Za-z0-9._~+/-]+=*")
_PREIMAGE_RE: Final = re.compile(r"[0-9a-fA-F]{64}")
_HEX_RE: Final = re.compile(r"[0-9a-f]+")
_TIMESTAMP_RE: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{3}|\d{6}))?Z", re.ASCII
)
_TCHARS: Final = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_OWS: Final = " \t"
# Characters a bound value (realm, opaque) may hold: printable ASCII minus '"', '\' and '|'.
# Quotes and backslashes are escaped on the wire and some clients echo the escaped form; '|' is
# the unescaped HMAC delimiter; non-ASCII would be re-encoded differently by different stacks.
_SAFE_BOUND_RE: Final = re.compile(r"[\x20-\x7e]+")
_UNSAFE_BOUND: Final = frozenset('"\\|')


class CredentialError(ValueError):
    """A credential boltgate refuses; ``code`` is the problem-type slug to report.

    ``malformed-credential``, ``invalid-challenge`` and ``payment-expired`` are answered with
    a fresh 402 challenge; ``method-unsupported`` with 400.
    """

    def __init__(self, code: str, detail: str | None = None) -> None:
        self.code = code
        self.detail = detail or code.replace("-", " ")
        super().__init__(self.detail)

    @property
    def type_uri(self) -> str:
        """The RFC 9457 ``type`` for this failure."""
        return problem_type(self.code)


def problem_type(code: str) -> str:
    """The problem ``type`` URI for a slug: ``PROBLEM_BASE + code``."""
    return PROBLEM_BASE + code


# -- encodings ---------------------------------------------------------------------------------


def b64url_encode(data: bytes) -> str:
    """base64url (RFC 4648 §5) without padding, as every MPP field is emitted."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict base64url: padding optional, but nothing else lenient.

    Refused with ``ValueError``: characters outside the URL-safe alphabet (``+``, ``/``,
    whitespace, line breaks), padding that is internal, excessive or leaves a length that is not
    a multiple of four, a dangling sixth bit group, and non-zero trailing bits (so every payload
    has exactly one unpadded spelling).
    """
    match = _B64URL_RE.fullmatch(text)
    if match is None:
        raise ValueError("not base64url")
    padding = match.group(1)
    body = text[: len(text) - len(padding)]
    if padding and len(text) % 4:
        raise ValueError("base64url padding to a length that is not a multiple of 4")
    if len(body) % 4 == 1:
        raise ValueError("base64url input has a dangling character")
    try:
        data = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except binascii.Error as exc:  # pragma: no cover - excluded by the checks above
        raise ValueError("not base64url") from exc
    if b64url_encode(data) != body:
        raise ValueError("base64url input has non-zero trailing bits")
    return data


def _json_number(value: object) -> object:
    """Integers beyond 2^53-1 become doubles, as RFC 8785 (ECMAScript numbers) renders them."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and abs(value) > _MAX_SAFE_INTEGER:
        try:
            return float(value)
        except OverflowError as exc:
            raise ValueError("number out of range for JSON") from exc
    if isinstance(value, dict):
        return {key: _json_number(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_number(item) for item in value]
    return value


def canonical_json(obj: object) -> bytes:
    """RFC 8785 (JCS) bytes of a JSON-compatible value.

    Keys sort by UTF-16 code units; strings escape only what ECMAScript's JSON.stringify
    escapes; numbers render as ECMAScript doubles (so integers beyond 2^53 lose precision
    exactly as every other JCS implementation loses it). ``ValueError`` for NaN, infinities,
    lone surrogates and other values JSON cannot carry; ``TypeError`` for non-JSON types.
    """
    return rfc8785.dumps(_json_number(obj))  # type: ignore[arg-type]


def _reject_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate JSON member {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _loads(data: str | bytes) -> object:
    """Strict JSON: UTF-8 only, no duplicate members, no NaN/Infinity; ``ValueError`` otherwise."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc


def canonicalize(text: str | bytes) -> bytes:
    """Parse JSON text strictly and return its JCS form; ``ValueError`` on malformed input."""
    return canonical_json(_loads(text))


# -- timestamps --------------------------------------------------------------------------------


def format_timestamp(value: datetime) -> str:
    """RFC 3339 UTC, whole seconds, ``Z``: ``2026-11-23T12:00:00Z`` (the fraction is dropped).

    Naive datetimes are refused (``ValueError``): a challenge's expiry must not depend on the
    host's time zone.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must be timezone-aware")
    utc = value.astimezone(UTC)
    return f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}Z"


def parse_timestamp(text: str) -> datetime | None:
    """An aware UTC datetime from ``YYYY-MM-DDTHH:MM:SS[.fff|.ffffff]Z``; ``None`` if not that."""
    match = _TIMESTAMP_RE.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    fraction = match.group(7) or ""
    micro = int(fraction.ljust(6, "0")) if fraction else 0
    try:
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
    except ValueError:
        return None


def _aware(value: datetime, what: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware")


# -- challenges --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Challenge:
    """One ``Payment`` challenge, every value exactly as it goes on (or came back over) the wire."""

    id: str
    realm: str
    method: str
    intent: str
    request: str
    expires: str
    digest: str | None = None
    description: str | None = None
    opaque: str | None = None

    def params(self) -> dict[str, str]:
        """The auth-params in emit order; absent optional ones are left out."""
        values = {
            "id": self.id,
            "realm": self.realm,
            "method": self.method,
            "intent": self.intent,
            "request": self.request,
            "expires": self.expires,
            "digest": self.digest,
            "description": self.description,
            "opaque": self.opaque,
        }
        return {name: value for name, value in values.items() if value is not None}


@dataclass(frozen=True, slots=True)
class ChargeRequest:
    """The decoded ``request`` of a Lightning charge challenge."""

    amount_sats: int
    currency: str
    invoice: str
    payment_hash: str | None
    network: str | None


def request_param(amount_sats: int, invoice: str, payment_hash: str, network: str) -> str:
    """The ``request`` parameter: base64url(JCS(charge request JSON)).

    ``amount`` is the invoice's amount in whole sats written as a decimal string, ``currency``
    is ``"sat"``; ``paymentHash`` is lower-case hex. ``ValueError`` for a non-positive amount,
    an empty invoice or a payment hash that is not 32 bytes of hex.
    """
    if isinstance(amount_sats, bool) or not isinstance(amount_sats, int) or amount_sats <= 0:
        raise ValueError("amount_sats must be a positive integer")
    if not invoice:
        raise ValueError("invoice must not be empty")
    if _PREIMAGE_RE.fullmatch(payment_hash) is None:
        raise ValueError("payment_hash must be 64 hex characters")
    if not network:
        raise ValueError("network must not be empty")
    body = {
        "amount": str(amount_sats),
        "currency": "sat",
        "methodDetails": {"invoice": invoice, "paymentHash": payment_hash.lower(), "network": network},
    }
    return b64url_encode(canonical_json(body))


def decode_request(request: str) -> dict[str, object]:
    """The JSON object inside a ``request`` (padding optional); ``ValueError`` on garbage."""
    value = _loads(b64url_decode(request))
    if not isinstance(value, dict):
        raise ValueError("request is not a JSON object")
    return value


def parse_charge_request(request: str) -> ChargeRequest:
    """Decode and type-check a Lightning charge ``request``; ``ValueError`` if it is not one.

    ``amount`` must be a decimal string of a positive integer (a JSON integer is accepted
    too), ``currency`` ``"sat"`` and ``methodDetails.invoice`` a non-empty string;
    ``paymentHash`` and ``network`` are optional strings.
    """
    body = decode_request(request)
    amount = body.get("amount")
    if isinstance(amount, str) and amount.isascii() and amount.isdigit() and len(amount) <= 19:
        sats = int(amount)
    elif isinstance(amount, int) and not isinstance(amount, bool):
        sats = amount
    else:
        raise ValueError("amount is not a whole number of sats")
    if sats <= 0:
        raise ValueError("amount must be positive")
    currency = body.get("currency")
    if currency != "sat":
        raise ValueError("currency must be 'sat'")
    details = body.get("methodDetails")
    if not isinstance(details, dict):
        raise ValueError("methodDetails missing")
    invoice = details.get("invoice")
    if not isinstance(invoice, str) or not invoice:
        raise ValueError("methodDetails.invoice missing")
    payment_hash = details.get("paymentHash")
    network = details.get("network")
    if payment_hash is not None and not isinstance(payment_hash, str):
        raise ValueError("methodDetails.paymentHash must be a string")
    if network is not None and not isinstance(network, str):
        raise ValueError("methodDetails.network must be a string")
    return ChargeRequest(sats, currency, invoice, payment_hash, network)


def challenge_id(
    key: bytes,
    realm: str,
    method: str,
    intent: str,
    request: str,
    expires: str | None,
    digest: str | None = None,
    opaque: str | None = None,
) -> str:
    """base64url(HMAC-SHA256(key, "realm|method|intent|request|expires|digest|opaque")).

    Absent fields are empty slots (the delimiters stay); ``description`` is not covered. The
    delimiter is not escaped, so callers that mint challenges keep ``|`` out of the values
    (:func:`new_challenge` does). ``UnicodeEncodeError`` (a ``ValueError``) for lone surrogates.
    """
    message = "|".join((realm, method, intent, request, expires or "", digest or "", opaque or ""))
    return b64url_encode(hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest())


def _check_bound(name: str, value: str) -> None:
    if _SAFE_BOUND_RE.fullmatch(value) is None or _UNSAFE_BOUND.intersection(value):
        raise ValueError(f'{name} must be non-empty printable ASCII without \'"\', "\\" or "|"')


def _clean_description(text: str) -> str:
    """Display-only text made safe for every client: control characters dropped, ``"`` -> ``'``.

    Some clients read quoted values with ``"([^"]*)"`` and would cut the text at an escaped quote.
    """
    return "".join(ch for ch in text if ch == "\t" or not _is_ctl(ch)).replace('"', "'")


def new_challenge(
    key: bytes,
    *,
    realm: str,
    amount_sats: int,
    invoice: str,
    payment_hash: str,
    network: str,
    expires: datetime,
    description: str | None = None,
    opaque: str | None = None,
) -> Challenge:
    """Mint a Lightning charge challenge bound to ``key``.

    ``realm`` and ``opaque`` (both covered by the id) must be printable ASCII without ``"``,
    ``\\`` or ``|`` (``ValueError``), so every client echoes them byte for byte. ``description``
    is display-only: control characters are dropped and ``"`` becomes ``'``. ``expires`` is
    written in UTC with ``Z`` and no fraction; it must be timezone-aware.
    """
    _check_bound("realm", realm)
    if opaque is not None:
        _check_bound("opaque", opaque)
    request = request_param(amount_sats, invoice, payment_hash, network)
    expires_text = format_timestamp(expires)
    identifier = challenge_id(key, realm, METHOD, INTENT, request, expires_text, None, opaque)
    return Challenge(
        id=identifier,
        realm=realm,
        method=METHOD,
        intent=INTENT,
        request=request,
        expires=expires_text,
        digest=None,
        description=None if description is None else _clean_description(description),
        opaque=opaque,
    )


def _is_ctl(ch: str) -> bool:
    return ch < " " or ch == "\x7f"


def _quote(value: str) -> str:
    """An RFC 9110 quoted-string: ``"`` and ``\\`` become quoted-pairs, HTAB and obs-text stay
    verbatim, other control characters are dropped (they could split the header)."""
    out = ['"']
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\t" or not _is_ctl(ch):
            out.append(ch)
    out.append('"')
    return "".join(out)


def format_challenge_params(params: Mapping[str, str]) -> str:
    """``Payment name="value", …``: known parameters in emit order, then any others as given.

    Every value is quoted (see :func:`_quote`); ``ValueError`` if a name is not a token. Extra
    names are for the rare caller that adds its own (for example legacy ``invoice``/``amount``).
    """
    names = [name for name in PARAM_ORDER if name in params]
    names += [name for name in params if name not in PARAM_ORDER]
    parts = []
    for name in names:
        if not name or not _TCHARS.issuperset(name):
            raise ValueError(f"auth-param name {name!r} is not a token")
        parts.append(f"{name}={_quote(params[name])}")
    return f"{SCHEME} " + ", ".join(parts)


def format_challenge(challenge: Challenge) -> str:
    """The ``WWW-Authenticate`` value for one challenge."""
    return format_challenge_params(challenge.params())


# -- RFC 9110 challenge lists ------------------------------------------------------------------


def _skip(text: str, i: int, chars: str) -> int:
    n = len(text)
    while i < n and text[i] in chars:
        i += 1
    return i


def _token_end(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in _TCHARS:
        i += 1
    return i


def _read_quoted(text: str, i: int) -> tuple[str, int]:
    """The unescaped content of the quoted-string opening at ``text[i]`` and the index after it."""
    out: list[str] = []
    i += 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            return "".join(out), i + 1
        if ch == "\\":
            if i + 1 >= n:
                break
            ch = text[i + 1]
            i += 1
        if _is_ctl(ch) and ch != "\t":
            raise ValueError("control character in a quoted-string")
        out.append(ch)
        i += 1
    raise ValueError("unterminated quoted-string")


def _read_param(text: str, i: int, params: dict[str, str]) -> int:
    """Read ``name BWS = BWS (token / quoted-string)``; the first occurrence of a name wins."""
    end = _token_end(text, i)
    if end == i:
        raise ValueError(f"expected an auth-param at offset {i}")
    name = text[i:end].lower()
    i = _skip(text, end, _OWS)
    if i >= len(text) or text[i] != "=":
        raise ValueError(f"expected '=' at offset {i}")
    i = _skip(text, i + 1, _OWS)
    if i < len(text) and text[i] == '"':
        value, i = _read_quoted(text, i)
    else:
        end = _token_end(text, i)
        if end == i:
            raise ValueError(f"expected a token or quoted-string at offset {i}")
        value, i = text[i:end], end
    params.setdefault(name, value)
    return i


def _expect_separator(text: str, i: int) -> int:
    i = _skip(text, i, _OWS)
    if i < len(text) and text[i] != ",":
        raise ValueError(f"expected ',' at offset {i}")
    return i


def _split_challenges(text: str) -> list[tuple[str, dict[str, str]]]:
    """Every challenge in a header value as (lower-case scheme, lower-cased auth-params).

    Follows RFC 9110 §11: a comma-separated list where a token followed by ``=`` continues the
    current challenge and any other token starts a new one (so one scheme's parameters never
    leak into the next); empty list elements are skipped; token68 challenges get no params.
    ``ValueError`` on a syntax error.
    """
    challenges: list[tuple[str, dict[str, str]]] = []
    params: dict[str, str] | None = None
    n = len(text)
    i = 0
    while True:
        i = _skip(text, i, _OWS + ",")
        if i >= n:
            return challenges
        end = _token_end(text, i)
        if end == i:
            raise ValueError(f"unexpected character at offset {i}")
        after = _skip(text, end, _OWS)
        if after < n and text[after] == "=":
            if params is None:
                raise ValueError("auth-param before any auth-scheme")
            i = _expect_separator(text, _read_param(text, i, params))
            continue
        params = {}
        challenges.append((text[i:end].lower(), params))
        i = after
        if i >= n or text[i] == ",":
            continue
        if after == end:
            raise ValueError(f"expected whitespace after the auth-scheme at offset {i}")
        token68 = _TOKEN68_RE.match(text, i)
        if token68 is not None:
            stop = _skip(text, token68.end(), _OWS)
            if stop >= n or text[stop] == ",":
                i = stop
                continue
        i = _expect_separator(text, _read_param(text, i, params))


def parse_challenges(header_value: str) -> list[dict[str, str]]:
    """The complete ``Payment`` challenges in a ``WWW-Authenticate`` value, in order.

    Scheme and parameter names are case-insensitive (names come back lower-case), values may be
    tokens or quoted-strings (unescaped), a repeated parameter keeps its first value, other
    schemes' challenges are skipped, and a Payment challenge missing any of ``id``, ``realm``,
    ``method``, ``intent`` or ``request`` is skipped. ``ValueError`` on a syntax error or when no
    complete Payment challenge remains.
    """
    found = [
        dict(params)
        for scheme, params in _split_challenges(header_value)
        if scheme == "payment" and all(params.get(name) for name in _REQUIRED)
    ]
    if not found:
        raise ValueError("no complete Payment challenge")
    return found


# -- credentials -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Credential:
    """A modern (draft-00) credential: the echoed challenge and the payment proof."""

    challenge: dict[str, str]
    preimage: str
    source: str | None = None


@dataclass(frozen=True, slots=True)
class LegacyCredential:
    """``Payment method="lightning", preimage="…"``: names no challenge, only the proof."""

    preimage: str


def _malformed(detail: str) -> CredentialError:
    return CredentialError("malformed-credential", detail)


def _unsupported(method: str) -> CredentialError:
    return CredentialError("method-unsupported", f"payment method {method!r} is not supported")


def _split_scheme(value: str) -> tuple[str, str]:
    """(lower-case scheme, the rest with surrounding whitespace removed)."""
    text = value.strip(_OWS)
    end = _token_end(text, 0)
    return text[:end].lower(), text[end:].strip(_OWS)


def _utf8_ok(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _decode_modern(value: str) -> tuple[dict[str, object], dict[str, str], dict[str, object], str | None]:
    """(whole body, challenge, payload, source) of a modern credential; see decode_credential_json."""
    if len(value) > MAX_CREDENTIAL_CHARS:
        raise _malformed("credential too long")
    scheme, token = _split_scheme(value)
    if scheme != "payment":
        raise _malformed("not a Payment credential")
    if _TOKEN68_B64URL_RE.fullmatch(token) is None:
        raise _malformed("credential is not a base64url token")
    try:
        body = _loads(b64url_decode(token))
    except ValueError as exc:
        raise _malformed(f"credential is not base64url JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _malformed("credential is not a JSON object")
    challenge = body.get("challenge")
    if not isinstance(challenge, dict):
        raise _malformed("credential has no challenge object")
    echoed: dict[str, str] = {}
    for name, item in challenge.items():
        if not isinstance(item, str) or not _utf8_ok(item) or not _utf8_ok(name):
            raise _malformed(f"challenge.{name} is not a string")
        echoed[name] = item
    for name in _REQUIRED:
        if not echoed.get(name):
            raise _malformed(f"challenge.{name} missing")
    payload = body.get("payload")
    if not isinstance(payload, dict) or not payload:
        raise _malformed("credential has no payload")
    source = body.get("source")
    if source is not None and not isinstance(source, str):
        raise _malformed("source is not a string")
    return body, echoed, payload, source


def decode_credential_json(value: str) -> dict[str, object]:
    """The JSON object of a modern ``Authorization: Payment <base64url>`` value.

    Checks only the envelope every method shares: ``challenge`` is an object of strings with
    non-empty ``id``, ``realm``, ``method``, ``intent`` and ``request``; ``payload`` is a
    non-empty object; ``source``, if present, is a string. ``CredentialError``
    (``malformed-credential``) otherwise, including for a legacy auth-param credential.
    """
    return _decode_modern(value)[0]


def _preimage(value: object) -> str:
    if not isinstance(value, str) or _PREIMAGE_RE.fullmatch(value) is None:
        raise _malformed("preimage must be 64 hex characters")
    return value.lower()


def parse_credential(value: str) -> Credential | LegacyCredential:
    """Parse a whole ``Authorization`` value (``Payment …``, scheme case-insensitive).

    A base64url token (padding optional) is a modern credential: JSON checked as in
    :func:`decode_credential_json` (members in any order), ``payload.preimage`` 64 hex
    characters (returned lower-case). Otherwise the value is read as the legacy auth-params
    ``method="lightning", preimage="…"``. Raises ``CredentialError`` with ``method-unsupported``
    for a method other than ``lightning``, else ``malformed-credential`` for anything that is
    not one of those shapes or is longer than ``MAX_CREDENTIAL_CHARS``.
    """
    if len(value) > MAX_CREDENTIAL_CHARS:
        raise _malformed("credential too long")
    scheme, rest = _split_scheme(value)
    if scheme != "payment":
        raise _malformed("not a Payment credential")
    if not rest:
        raise _malformed("empty credential")
    if _TOKEN68_B64URL_RE.fullmatch(rest) is not None:
        _, echoed, payload, source = _decode_modern(value)
        if echoed["method"].lower() != METHOD:
            raise _unsupported(echoed["method"])
        return Credential(challenge=echoed, preimage=_preimage(payload.get("preimage")), source=source)
    try:
        parsed = _split_challenges(value)
    except ValueError as exc:
        raise _malformed(f"credential is neither base64url nor auth-params: {exc}") from None
    if len(parsed) != 1 or parsed[0][0] != "payment":
        raise _malformed("expected exactly one Payment credential")
    params = parsed[0][1]
    method = params.get("method")
    if not method:
        raise _malformed("legacy credential has no method")
    if method.lower() != METHOD:
        raise _unsupported(method)
    return LegacyCredential(preimage=_preimage(params.get("preimage")))


def verify_echo(key: bytes | Sequence[bytes], echoed: Mapping[str, str], now: datetime) -> Challenge:
    """Recognise one of boltgate's own challenges from the parameters a client echoed back.

    ``id``, ``realm``, ``method``, ``intent``, ``request`` and ``expires`` must be non-empty
    strings (``malformed-credential``); a method other than ``lightning`` is
    ``method-unsupported``; an intent other than ``charge`` or an ``id`` that is not the HMAC of
    the covered fields under ``key`` (compared in constant time; several keys: under any of them,
    for ids signed before a server key rotation) is ``invalid-challenge``; an
    ``expires`` that does not parse is ``malformed-credential`` and one at or before ``now`` is
    ``payment-expired``. ``description`` is returned as echoed (it is not covered). Whether the
    challenge was already spent, and whether the preimage pays it, is the caller's business.
    """
    _aware(now, "now")
    for name, item in echoed.items():
        if not isinstance(item, str) or not _utf8_ok(item):
            raise _malformed(f"challenge.{name} is not a string")
    missing = [name for name in (*_REQUIRED, "expires") if not echoed.get(name)]
    if missing:
        raise _malformed("challenge is missing " + ", ".join(missing))
    if echoed["method"].lower() != METHOD:
        raise _unsupported(echoed["method"])
    if echoed["intent"] != INTENT:
        raise CredentialError("invalid-challenge", "challenge intent is not charge")
    challenge = Challenge(
        id=echoed["id"],
        realm=echoed["realm"],
        method=echoed["method"],
        intent=echoed["intent"],
        request=echoed["request"],
        expires=echoed["expires"],
        digest=echoed.get("digest"),
        description=echoed.get("description"),
        opaque=echoed.get("opaque"),
    )
    given = challenge.id.encode("utf-8")
    fields = (
        challenge.realm,
        challenge.method,
        challenge.intent,
        challenge.request,
        challenge.expires,
        challenge.digest,
        challenge.opaque,
    )
    keys = (key,) if isinstance(key, bytes) else tuple(key)
    if not any(hmac.compare_digest(challenge_id(k, *fields).encode("ascii"), given) for k in keys):
        raise CredentialError("invalid-challenge", "challenge was not issued by this server or was altered")
    expires_at = parse_timestamp(challenge.expires)
    if expires_at is None:
        raise _malformed("challenge expires is not an RFC 3339 UTC timestamp")
    if expires_at <= now:
        raise CredentialError("payment-expired", "challenge has expired")
    return challenge


# -- receipts ----------------------------------------------------------------------------------


def receipt(challenge_id: str, payment_hash: str, timestamp: datetime) -> str:
    """The ``Payment-Receipt`` value: base64url of compact JSON, members in this order:
    ``{"status":"success","method":"lightning","timestamp":…,"reference":<payment hash>,
    "challengeId":…}`` (``challengeId`` left out when empty), byte-identical to Aperture's.

    ``reference`` is the payment hash (lower-case hex; ``ValueError`` otherwise): the preimage is
    the secret that proves payment and never goes into a receipt.
    """
    reference = payment_hash.lower()
    if _HEX_RE.fullmatch(reference) is None:
        raise ValueError("payment_hash must be hex")
    body: dict[str, str] = {
        "status": "success",
        "method": METHOD,
        "timestamp": format_timestamp(timestamp),
        "reference": reference,
    }
    if challenge_id:
        body["challengeId"] = challenge_id
    return b64url_encode(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
