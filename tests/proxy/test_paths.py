"""Proxy paths: what is refused, what is forwarded as sent, and that the upstream host never changes."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from boltgate.proxy.paths import UnsafePath, forwarded_path, upstream_url

PREFIX = b"/l402/proxy/prx_1"


def fwd(rest: bytes) -> tuple[str, str]:
    return forwarded_path(PREFIX + rest, PREFIX)


@pytest.mark.parametrize(
    ("rest", "expected"),
    [
        (b"", ("/", "/")),
        (b"/", ("/", "/")),
        (b"/forecast/New%20York", ("/forecast/New%20York", "/forecast/New York")),
        (b"/forecast/", ("/forecast/", "/forecast/")),
        (b"/a/b+c/%C3%A9t%C3%A9", ("/a/b+c/%C3%A9t%C3%A9", "/a/b+c/été")),
        (b"/%41%3f%23", ("/%41%3f%23", "/A?#")),
        (b"/.../a.b/.x/x.", ("/.../a.b/.x/x.", "/.../a.b/.x/x.")),
        (b"/@evil.example", ("/@evil.example", "/@evil.example")),
        (b"/a:b;c=d,e!$&'()*~_-", ("/a:b;c=d,e!$&'()*~_-", "/a:b;c=d,e!$&'()*~_-")),
        (b"/%25", ("/%25", "/%")),
    ],
)
def test_accepted_paths_keep_the_clients_encoding(rest: bytes, expected: tuple[str, str]) -> None:
    assert fwd(rest) == expected


@pytest.mark.parametrize(
    "rest",
    [
        b"/.",
        b"/..",
        b"/a/./b",
        b"/a/../b",
        b"/a/..",
        b"/a/../",
        b"/%2e",
        b"/%2E%2E",
        b"/.%2e",
        b"/%2e.",
        b"/a/%2e%2e/b",
        b"/a%2fb",
        b"/a%2Fb",
        b"/a%5cb",
        b"/a%5Cb",
        b"/%2f%2fevil.example",
        b"/a\\b",
        b"/\\evil.example",
        b"//evil.example/x",
        b"//",
        b"/a//b",
        b"/a//",
        b"/http://evil.example/x",
        b"/a\x00b",
        b"/a%00b",
        b"/a\nb",
        b"/a%0Ab",
        b"/a%0db",
        b"/a%1f",
        b"/a%7F",
        b"/a\x7f",
        b"/a b",
        b"/a?b",
        b"/a#b",
        b"/%zz",
        b"/%4",
        b"/a%",
        b"/%g0",
        b"/caf\xc3\xa9",
        b"/\xff",
        b"/%ff",
        b"/%c0%ae%c0%ae",
        b"/%C3",
        b"/" + b"a" * 4096,
        b"abc",
        b"abc/x",
    ],
)
def test_unsafe_paths_are_refused(rest: bytes) -> None:
    with pytest.raises(UnsafePath) as info:
        fwd(rest)
    assert info.value.code in ("invalid_proxy_path", "proxy_path_too_long")
    assert str(info.value)


def test_error_codes_and_limits() -> None:
    with pytest.raises(UnsafePath) as info:
        forwarded_path(b"/l402/proxy/prx_1abc", PREFIX)
    assert info.value.code == "invalid_proxy_path"
    with pytest.raises(UnsafePath) as info:
        forwarded_path(b"/l402/proxy/prx_2/x", PREFIX)
    assert info.value.code == "invalid_proxy_path"
    with pytest.raises(UnsafePath) as info:
        fwd(b"/" + b"a" * 4096)
    assert info.value.code == "proxy_path_too_long"
    assert fwd(b"/" + b"a" * 4095)[0] == "/" + "a" * 4095


@pytest.mark.parametrize(
    ("base", "forwarded", "query", "expected"),
    [
        ("https://h/v1", "/x", b"", "https://h/v1/x"),
        ("https://h", "/x", b"", "https://h/x"),
        ("https://h/v1", "/", b"", "https://h/v1/"),
        ("https://h/v1/", "/x", b"", "https://h/v1/x"),
        ("http://h:8080/v1", "/x/New%20York", b"a=1&b=%20c", "http://h:8080/v1/x/New%20York?a=1&b=%20c"),
        ("https://h", "/x", b"q=a b#frag&r=\xc3\xa9", "https://h/x?q=a%20b%23frag&r=%C3%A9"),
        ("https://u:p@h/v1", "/@evil.example", b"", "https://u:p@h/v1/@evil.example"),
    ],
)
def test_upstream_url(base: str, forwarded: str, query: bytes, expected: str) -> None:
    assert upstream_url(base, forwarded, query) == expected


def test_an_at_sign_stays_a_path_segment_of_the_target() -> None:
    forwarded, _ = fwd(b"/@evil.example")
    url = httpx.URL(upstream_url("https://api.example", forwarded, b""))
    assert url.host == "api.example"
    assert url.userinfo == b""
    assert url.path == "/@evil.example"


@pytest.mark.parametrize(
    "forwarded", ["x", "//evil.example/x", "/a?b", "/a#b", "/a\\b", "/a b", "/é", "/a\n"]
)
def test_upstream_url_refuses_forwarded_parts_not_from_forwarded_path(forwarded: str) -> None:
    with pytest.raises(UnsafePath):
        upstream_url("https://h/v1", forwarded, b"")


@pytest.mark.parametrize(
    "base",
    [
        "ftp://h/x",
        "/relative",
        "https://",
        "https://h/v1?x=1",
        "https://h/v1#f",
        "https://h\\@evil/v1",
        "https://h /v1",
    ],
)
def test_upstream_url_refuses_bad_bases(base: str) -> None:
    with pytest.raises(UnsafePath) as info:
        upstream_url(base, "/x", b"")
    assert info.value.code == "invalid_target"


BASES = [
    "https://api.example/v1",
    "http://10.0.0.1:8080",
    "https://api.example:8443/a/b",
    "https://u@api.example",
]
_pieces = st.sampled_from(
    [b"/", b"//", b".", b"..", b"%2e", b"%2E", b"%2f", b"%5c", b"\\", b"%", b"%4", b"%00", b"%41", b"a", b"@",
     b":", b"?", b"#", b"http:", b"evil.example", b"%40", b"%3a", b"\x80", b"\x00", b" ", b"%C3%A9", b"~", b"[::1]"]
)  # fmt: skip
_remainders = st.binary(max_size=64) | st.lists(_pieces, max_size=12).map(b"".join)


@settings(max_examples=500, deadline=None)
@given(_remainders, st.sampled_from(BASES))
@example(b"/@evil.example", BASES[0])
@example(b"/http:%2F%2Fevil.example", BASES[0])
@example(b"/:8443", BASES[1])
def test_forwarded_paths_never_leave_the_target(rest: bytes, base: str) -> None:
    try:
        forwarded, decoded = forwarded_path(PREFIX + rest, PREFIX)
    except UnsafePath:
        return
    assert forwarded.isascii() and decoded.startswith("/")
    target, got = httpx.URL(base), httpx.URL(upstream_url(base, forwarded, b""))
    assert (got.scheme, got.host, got.port, got.userinfo) == (
        target.scheme,
        target.host,
        target.port,
        target.userinfo,
    )
    assert got.path.startswith(target.path.rstrip("/") + "/")
    assert ".." not in got.path.split("/") and "." not in got.path.split("/")
