"""Proxy pricing: pattern validation, specificity, HEAD fallback, conflicts, determinism."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from boltgate.proxy.pricing import (
    PatternError,
    Price,
    PricedEndpoint,
    PriceTable,
    normalize_method,
    parse_pattern,
)


def table(*endpoints: tuple[str, str, str, int], default: int = 1) -> PriceTable:
    return PriceTable([PricedEndpoint(*e) for e in endpoints], default)


def winner(t: PriceTable, method: str, path: str) -> str | None:
    return t.price(method, path).endpoint_id


@pytest.mark.parametrize(
    ("pattern", "normalised"),
    [
        ("/", "/"),
        ("/forecast", "/forecast"),
        ("/forecast/", "/forecast"),
        ("/v1/{city}/*", "/v1/{city}/*"),
        ("/v1/*/", "/v1/*"),
        ("/a b/Ünïcode/x.y/...", "/a b/Ünïcode/x.y/..."),
        ("/{_p}/{P9}", "/{_p}/{P9}"),
        ("/" + "/".join(["s"] * 32), "/" + "/".join(["s"] * 32)),
    ],
)
def test_parse_pattern_accepts_and_normalises(pattern: str, normalised: str) -> None:
    assert parse_pattern(pattern) == normalised


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("/a{b}", "mixes a literal"),
        ("/{b}x", "mixes a literal"),
        ("/x*", "mixes a literal"),
        ("/a}", "mixes a literal"),
        ("/*/x", "only allowed as the last segment"),
        ("/{1x}", "parameter name"),
        ("/{}", "parameter name"),
        ("/{" + "a" * 65 + "}", "parameter name"),
        ("/{a-b}", "parameter name"),
        ("x", "must start with '/'"),
        ("", "must start with '/'"),
        ("//", "empty"),
        ("/a//b", "empty"),
        ("/a//", "empty"),
        ("/{a}/{a}", "appears twice"),
        ("/a/../b", "dot segments"),
        ("/.", "dot segments"),
        ("/" + "/".join(["s"] * 33), "at most 32 segments"),
        ("/" + "a" * 1000, "at most 1000 characters"),
    ],
)
def test_parse_pattern_refuses_with_a_message(pattern: str, message: str) -> None:
    with pytest.raises(PatternError, match=message):
        parse_pattern(pattern)


def test_price_table_refuses_bad_pattern_and_method() -> None:
    with pytest.raises(PatternError, match="mixes a literal"):
        table(("e1", "/a{b}", "GET", 5))
    with pytest.raises(PatternError, match="unsupported HTTP method"):
        table(("e1", "/a", "FETCH", 5))


@pytest.mark.parametrize(
    ("method", "expected"),
    [("get", "GET"), ("Post", "POST"), ("HEAD", "HEAD"), ("options", "OPTIONS"), ("*", "*"), ("any", "*")],
)
def test_normalize_method(method: str, expected: str) -> None:
    assert normalize_method(method) == expected


@pytest.mark.parametrize("method", ["", "TRACE", "CONNECT", "PROPFIND", "GET ", "G*"])
def test_normalize_method_refuses(method: str) -> None:
    with pytest.raises(PatternError, match="unsupported HTTP method"):
        normalize_method(method)


def test_default_price_when_nothing_matches() -> None:
    t = table(("e1", "/forecast/{city}", "GET", 7), default=3)
    assert t.price("GET", "/forecast") == Price(None, 3, None)
    assert t.price("GET", "/forecast/a/b") == Price(None, 3, None)
    assert t.price("POST", "/forecast/Paris") == Price(None, 3, None)
    assert t.price("GET", "/Forecast/Paris") == Price(None, 3, None)  # literals are case-sensitive
    assert t.price("GET", "/forecast/Paris") == Price("e1", 7, "/forecast/{city}")
    assert PriceTable([], 9).price("GET", "/") == Price(None, 9, None)


def test_trailing_slash_is_ignored_in_patterns_and_paths() -> None:
    t = table(("e1", "/forecast/", "GET", 7), ("root", "/", "GET", 2))
    assert winner(t, "GET", "/forecast") == "e1"
    assert winner(t, "GET", "/forecast/") == "e1"
    assert t.price("GET", "/forecast").pattern == "/forecast"
    assert winner(t, "GET", "/") == "root"
    assert winner(t, "GET", "/forecast//") is None  # only one trailing slash is ignored
    assert winner(t, "GET", "/other") is None  # the root pattern matches only the root


def test_literal_beats_param_beats_star() -> None:
    t = table(("star", "/v1/*", "GET", 1), ("param", "/v1/{x}", "GET", 2), ("lit", "/v1/a", "GET", 3))
    assert winner(t, "GET", "/v1/a") == "lit"
    assert winner(t, "GET", "/v1/b") == "param"
    assert winner(t, "GET", "/v1/b/c") == "star"
    assert winner(t, "GET", "/v1") is None  # * needs at least one segment
    assert winner(t, "GET", "/v1/") is None


def test_wildcards_never_match_empty_segments() -> None:
    t = table(("param", "/a/{x}/b", "GET", 1), ("star", "/c/*", "GET", 2))
    assert winner(t, "GET", "/a/x/b") == "param"
    assert winner(t, "GET", "/a//b") is None
    assert winner(t, "GET", "/c/x") == "star"
    assert winner(t, "GET", "/c//") is None
    assert winner(t, "GET", "/c/x//y") is None


def test_leftmost_segment_decides_first() -> None:
    t = table(("a", "/{x}/b/c", "GET", 1), ("b", "/a/{y}/{z}", "GET", 2), ("c", "/a/*", "GET", 3))
    assert winner(t, "GET", "/a/b/c") == "b"  # literal in segment 1 outweighs two literals later
    assert winner(t, "GET", "/z/b/c") == "a"
    assert winner(t, "GET", "/a/b/c/d") == "c"


def test_more_segments_win_over_a_shorter_star() -> None:
    t = table(("short", "/a/*", "GET", 1), ("long", "/a/b/*", "GET", 2), ("longer", "/a/b/c/*", "GET", 3))
    assert winner(t, "GET", "/a/b/c/d") == "longer"
    assert winner(t, "GET", "/a/b/c") == "long"
    assert winner(t, "GET", "/a/x") == "short"


def test_exact_method_beats_any_but_path_comes_first() -> None:
    t = table(("any", "/a/{x}", "*", 1), ("get", "/a/{x}", "GET", 2), ("any_lit", "/a/b", "ANY", 3))
    assert winner(t, "GET", "/a/c") == "get"
    assert winner(t, "POST", "/a/c") == "any"
    assert winner(t, "PROPFIND", "/a/c") == "any"  # methods nobody can price still match *
    assert winner(t, "GET", "/a/b") == "any_lit"
    assert winner(t, "get", "/a/c") == "get"


def test_head_falls_back_to_get_only_when_no_head_or_any_matches() -> None:
    t = table(("get", "/a/{x}", "GET", 5), ("get_lit", "/a/b", "GET", 6))
    assert t.price("HEAD", "/a/c") == Price("get", 5, "/a/{x}")
    assert winner(t, "HEAD", "/a/b") == "get_lit"
    t = table(("get", "/a/b", "GET", 5), ("head", "/a/{x}", "HEAD", 1))
    assert winner(t, "HEAD", "/a/b") == "head"
    assert winner(t, "HEAD", "/z") is None
    t = table(("get", "/a/b", "GET", 5), ("any", "/a/*", "*", 1))
    assert winner(t, "HEAD", "/a/b") == "any"
    assert winner(t, "POST", "/a/b") == "any"
    assert winner(table(("get", "/a", "GET", 5)), "POST", "/a") is None  # only HEAD falls back


def test_ties_are_broken_by_endpoint_id_whatever_the_order() -> None:
    endpoints = [PricedEndpoint(f"ep_{i}", f"/a/{{p{i}}}", "GET", i) for i in range(8)]
    for seed in range(5):
        random.Random(seed).shuffle(endpoints)
        assert PriceTable(endpoints, 0).price("GET", "/a/x") == Price("ep_0", 0, "/a/{p0}")


def test_conflicts_pairs_same_method_and_shape() -> None:
    t = table(
        ("e3", "/a/{y}", "GET", 1),
        ("e1", "/a/{x}/", "GET", 1),
        ("e2", "/a/{z}", "GET", 1),
        ("e4", "/a/{x}", "POST", 1),
        ("e5", "/a/b", "GET", 1),
        ("e6", "/a/*", "*", 1),
        ("e7", "/a/*", "ANY", 1),
    )
    assert t.conflicts() == [("e1", "e2"), ("e1", "e3"), ("e2", "e3"), ("e6", "e7")]
    assert table(("e1", "/a/{x}", "GET", 1), ("e2", "/a/x", "GET", 1)).conflicts() == []


def test_literals_are_matched_verbatim_not_as_regex() -> None:
    t = table(("dot", "/a.b/(x)+", "GET", 1))
    assert winner(t, "GET", "/a.b/(x)+") == "dot"
    assert winner(t, "GET", "/axb/(x)+") is None
    assert winner(t, "GET", "/a.b/xx") is None


def test_negative_prices_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        table(("e1", "/a", "GET", -1))
    with pytest.raises(ValueError, match="negative"):
        PriceTable([], -1)


_segment = st.text(alphabet="abcXYZ019-_é ", min_size=1, max_size=4).filter(lambda s: s not in (".", ".."))


@st.composite
def _path_and_rivals(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    segs = draw(st.lists(_segment, min_size=1, max_size=6))
    rivals = []
    for _ in range(draw(st.integers(1, 6))):
        kinds = draw(st.lists(st.sampled_from(["lit", "param"]), min_size=len(segs), max_size=len(segs)))
        cut = draw(st.integers(0, len(segs)))  # < len(segs): replace the tail with *
        parts = [s if k == "lit" else f"{{p{i}}}" for i, (s, k) in enumerate(zip(segs, kinds, strict=True))]
        if cut < len(segs):
            parts = [*parts[:cut], "*"]
        if parts == segs:
            parts[-1] = "{last}"
        rivals.append("/" + "/".join(parts))
    return segs, rivals


@settings(max_examples=300, deadline=None)
@given(_path_and_rivals(), st.randoms(use_true_random=False), st.sampled_from(["GET", "*"]))
def test_the_literal_pattern_of_a_path_always_wins(
    drawn: tuple[list[str], list[str]], rnd: random.Random, exact_method: str
) -> None:
    segs, rivals = drawn
    path = "/" + "/".join(segs)
    ids = [f"id{n:02d}" for n in range(len(rivals) + 1)]
    rnd.shuffle(ids)  # the literal endpoint must win on specificity, not on its id
    endpoints = [PricedEndpoint(ids[0], path, exact_method, 99)]
    endpoints += [
        PricedEndpoint(i, p, rnd.choice(["GET", "*"]), 1) for i, p in zip(ids[1:], rivals, strict=True)
    ]
    rnd.shuffle(endpoints)
    t = PriceTable(endpoints, 0)
    assert t.price("GET", path) == Price(ids[0], 99, path)
    assert t.price("GET", path + "/") == Price(ids[0], 99, path)
