"""Platform routes: the MCP version check (as the MCP reads it), the operator's privacy policy and
terms (never invented; rendered safely), and the public count of paid downloads."""

from __future__ import annotations

import re

import httpx
import pytest

from boltgate.platform.legal import render_markdown
from boltgate.platform.version import parse_version
from tests.helpers import auth

CHECK = "/api/mcp/version-check"


@pytest.fixture(scope="module")
async def operated(make_gateway, tmp_path_factory):
    folder = tmp_path_factory.mktemp("legal")
    (folder / "privacy.md").write_text(
        "# Our privacy policy\n\nWe keep **your email** and nothing else.\n"
        "Contact [us](mailto:ops@example.com).\n\n- payments\n- logs <script>alert(1)</script>\n"
        "\n[bad](javascript:alert(1))\n"
    )
    (folder / "terms.txt").write_text("Terms of service\n\nUse at your own *risk* & enjoy.\n")
    return await make_gateway(
        mcp_latest_version="2.3.0",
        mcp_minimum_version="2.1.0",
        mcp_release_notes="Faster payments.",
        privacy_policy_file=folder / "privacy.md",
        terms_file=folder / "terms.txt",
    )


def test_versions_compare_by_semver_precedence():
    order = ["1.9.9", "2.0.0-alpha", "2.0.0-alpha.1", "2.0.0-alpha.beta", "2.0.0-beta.2", "2.0.0-beta.11",
             "2.0.0-rc.1", "2.0.0", "v2.0.1", "2.1", "2.10.0"]  # fmt: skip
    parsed = [parse_version(v) for v in order]
    assert parsed == sorted(parsed) and len(set(parsed)) == len(parsed)
    assert parse_version("2.1") == parse_version("2.1.0") == parse_version("2.1.0+build.5")
    for bad in ("", "2", "abc", "2.1.1.1", "02.1.0", "2.1.0-", "2.1.0-a..b", "1" * 70):
        with pytest.raises(ValueError, match="is not a version"):
            parse_version(bad)


async def test_version_check_with_the_defaults(client):
    answer = await client.get(CHECK, params={"currentVersion": "2.1.1"})
    assert answer.status_code == 200
    assert answer.json() == {
        "latestVersion": "2.1.1",
        "updateRequired": False,
        "updateRecommended": False,
        "message": "You are running the latest version.",
        "releaseNotes": "",
    }
    older = (await client.get(CHECK, params={"currentVersion": "2.0.9"})).json()
    assert older["updateRecommended"] is True and older["updateRequired"] is False
    for bad in (
        {"currentVersion": "latest"},
        {"currentVersion": "2.1.1;rm"},
        {},
        {"currentVersion": "9" * 80},
    ):
        refused = await client.get(CHECK, params=bad)
        assert refused.status_code == 400, bad
        assert refused.json()["error"] in ("invalid_version", "validation_error")
    assert (await client.get(CHECK, params={"currentVersion": "x"})).json()["error"] == "invalid_version"


async def test_version_check_required_and_recommended(operated):
    async with httpx.AsyncClient(base_url=operated.base_url) as http:
        old = (await http.get(CHECK, params={"currentVersion": "2.0.5"})).json()
        mid = (await http.get(CHECK, params={"currentVersion": "2.1.0-rc.1"})).json()
        ok = (await http.get(CHECK, params={"currentVersion": "2.1.0"})).json()
        new = (await http.get(CHECK, params={"currentVersion": "2.4.0"})).json()
    assert old["updateRequired"] is True and old["updateRecommended"] is True and "2.3.0" in old["message"]
    assert mid["updateRequired"] is True  # a pre-release of the minimum comes before it
    assert ok["updateRequired"] is False and ok["updateRecommended"] is True
    assert new["updateRequired"] is False and new["updateRecommended"] is False
    assert old["latestVersion"] == "2.3.0" and old["releaseNotes"] == "Faster payments."


async def test_without_texts_the_pages_say_none_was_published(client):
    for path, title in (("/privacy", "Privacy policy"), ("/terms", "Terms of service")):
        page = await client.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert f"<h1>{title}</h1>" in page.text and "has not published" in page.text
        data = (await client.get(path, headers={"Accept": "application/json"})).json()
        assert data["published"] is False and data["title"] == title


async def test_the_operators_texts_are_rendered_safely(operated):
    async with httpx.AsyncClient(base_url=operated.base_url) as http:
        privacy = await http.get("/privacy")
        terms = await http.get("/terms")
        raw = (await http.get("/terms", headers={"Accept": "application/json"})).json()
    assert "<h1>Our privacy policy</h1>" in privacy.text
    assert "<strong>your email</strong>" in privacy.text
    assert '<a href="mailto:ops@example.com" rel="nofollow noopener">us</a>' in privacy.text
    assert "<li>payments</li>" in privacy.text and "<script>" not in privacy.text
    assert "&lt;script&gt;" in privacy.text and 'href="javascript' not in privacy.text
    assert "default-src 'none'" in privacy.headers["content-security-policy"]
    assert "<p>Use at your own *risk* &amp; enjoy.</p>" in terms.text  # plain text: no Markdown
    assert raw == {
        "title": "Terms of service",
        "published": True,
        "format": "text",
        "content": "Terms of service\n\nUse at your own *risk* & enjoy.\n",
    }


def test_markdown_lists_and_paragraphs():
    html = render_markdown("Intro line\nsecond line\n\n1. one\n2. two\n   more\n\n## Sub\ntext `code`")
    assert html == (
        "<p>Intro line<br>\nsecond line</p>\n<ol><li>one</li><li>two more</li></ol>\n"
        "<h2>Sub</h2>\n<p>text <code>code</code></p>"
    )


async def test_an_unreadable_text_is_a_503_problem(make_gateway, tmp_path):
    gateway = await make_gateway(terms_file=tmp_path / "missing.md")
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        answer = await http.get("/terms")
    assert answer.status_code == 503 and answer.json()["error"] == "legal_text_unavailable"
    assert str(tmp_path) not in answer.text


async def test_downloads_count_paid_content_downloads(client, merchant, make_gateway):
    _, key = merchant
    counted = await make_gateway()  # counts are kept a minute per process: a new one counts now
    async with httpx.AsyncClient(base_url=counted.base_url) as http:
        before = (await http.get("/api/stats/downloads")).json()
    assert set(before) == {
        "totalDownloads",
        "paidContentDownloads",
        "paidBundleDownloads",
        "contentItems",
        "countedAt",
    }
    slug = f"guide-{key[-8:].lower()}"
    slug = re.sub(r"[^a-z0-9-]", "x", slug)
    created = await client.post(
        "/api/l402/items",
        json={"slug": slug, "title": "Guide", "body": "text", "priceSats": 3},
        headers=auth(key),
    )
    assert created.status_code == 201, created.text
    challenge = await client.get(f"/api/l402/content/{slug}")
    assert challenge.status_code == 402
    macaroon = re.search(r'macaroon="([^"]+)"', challenge.headers["www-authenticate"]).group(1)  # type: ignore[union-attr]
    preimage = (await client.post("/api/dev/pay", json={"invoice": challenge.json()["invoice"]})).json()[
        "preimage"
    ]
    for _ in range(2):  # one purchase, downloaded twice: counted once
        got = await client.get(
            f"/api/l402/content/{slug}", headers={"Authorization": f"L402 {macaroon}:{preimage}"}
        )
        assert got.status_code == 200 and got.text == "text"
    fresh = await make_gateway()
    async with httpx.AsyncClient(base_url=fresh.base_url) as http:
        after = (await http.get("/api/stats/downloads")).json()
    assert after["paidContentDownloads"] == before["paidContentDownloads"] + 1
    assert after["totalDownloads"] == after["paidContentDownloads"] + after["paidBundleDownloads"]
    assert after["contentItems"] == before["contentItems"] + 1


async def test_the_mcp_servers_own_version_check_reads_our_answer(operated, monkeypatch):
    import io
    import logging

    level = logging.getLogger().level
    from lightning_enable_mcp.version_check import check_for_updates

    logging.getLogger().setLevel(level)  # the MCP package sets the root logger on import
    monkeypatch.setenv("LIGHTNING_ENABLE_API_URL", operated.base_url + "/")
    required, recommended, current = io.StringIO(), io.StringIO(), io.StringIO()
    await check_for_updates("2.0.5", stream=required)
    await check_for_updates("2.2.0", stream=recommended)
    await check_for_updates("2.3.0", stream=current)
    assert "CRITICAL UPDATE REQUIRED" in required.getvalue()
    assert "What's fixed: Faster payments." in required.getvalue()
    assert "Update available: v2.3.0" in recommended.getvalue() and "CRITICAL" not in recommended.getvalue()
    assert current.getvalue() == ""
