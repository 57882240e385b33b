"""Properties of the connection-URL parser: any text gives a Connection or a ConnectionUrlError
(nothing else), and no secret of a URL ever shows in its redacted form or in a parse error."""

from __future__ import annotations

import contextlib
from urllib.parse import quote

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from boltgate.lightning.connection import KINDS, SECRET_PARAMS, ConnectionUrlError, parse, redact

SCHEMES = sorted(KINDS)
# long enough that finding one by chance elsewhere in the URL is not a worry
SECRETS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=10, max_size=80).map(
    lambda text: "sk_" + text  # nothing else in these URLs has an underscore: no match by chance
)
HOSTS = st.one_of(
    st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z]{2,6}){0,2}", fullmatch=True),
    st.sampled_from(["127.0.0.1", "[::1]", "node.example", ""]),
)
PORTS = st.one_of(st.none(), st.integers(0, 70000).map(str), st.sampled_from(["", "x", "-1", "99999999"]))
PUBLIC = st.dictionaries(
    st.sampled_from(["timeout", "tls", "cert", "relay", "lud16", "network"]),
    st.text(alphabet=st.characters(blacklist_characters="_"), max_size=30),
    max_size=3,
)


@st.composite
def secret_urls(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A URL of a known scheme carrying secrets as the password and as secret query parameters."""
    scheme = draw(st.sampled_from(SCHEMES))
    secrets: list[str] = []
    netloc = ""
    if draw(st.booleans()):
        password = draw(SECRETS)
        secrets.append(password)
        netloc = quote(draw(st.text(alphabet="abcxyz", max_size=8))) + ":" + quote(password, safe="") + "@"
    netloc += draw(HOSTS)
    port = draw(PORTS)
    if port is not None:
        netloc += ":" + port
    query: list[tuple[str, str]] = []
    for name in draw(st.lists(st.sampled_from(sorted(SECRET_PARAMS)), max_size=3)):
        value = draw(SECRETS)
        secrets.append(value)
        shown = name.upper() if draw(st.booleans()) else name
        query.append((shown, value))
    query += list(draw(PUBLIC).items())
    draw(st.randoms()).shuffle(query)
    path = draw(st.sampled_from(["", "/", "/path/to/lightning-rpc", "/api"]))
    url = f"{scheme}://{netloc}{path}"
    if query:
        url += "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query)
    if draw(st.booleans()):
        url += draw(st.sampled_from(["#frag", " ", "\x00", "?&&=", "%zz", "[", "]"]))
    return url, secrets


@given(st.text(max_size=300))
@example("lnd-rest://[::1")
@example("phoenixd://:pw@host:notaport")
def test_any_text_parses_or_raises_connection_url_error(text: str) -> None:
    with contextlib.suppress(ConnectionUrlError):
        parse(text)
    redact(text)  # never raises either


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(secret_urls())
def test_no_secret_shows_in_the_redacted_url_or_a_parse_error(case: tuple[str, list[str]]) -> None:
    url, secrets = case
    shown = redact(url)
    try:
        connection = parse(url)
    except ConnectionUrlError as exc:
        shown += "\n" + str(exc)
    else:
        shown += "\n" + connection.redacted() + "\n" + repr(connection)
    for secret in secrets:
        assert secret not in shown, (url, shown)
        assert quote(secret, safe="") not in shown, (url, shown)
