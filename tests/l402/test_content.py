"""Paid content over real HTTP: items, the catalogue, 402 → content, files, bundles."""

from __future__ import annotations

import base64
import re

import pytest

from boltgate.l402 import macaroon
from tests.helpers import auth


async def _unlock(client, path: str, token: str | None = None) -> tuple[str, str]:
    """Pay the 402 of ``path``; returns (macaroon, preimage)."""
    response = await client.get(path)
    assert response.status_code == 402, response.text
    found = re.match(
        r'L402 macaroon="([^"]+)", invoice="([^"]+)"', response.headers.get_list("www-authenticate")[0]
    )
    preimage = (await client.post("/api/dev/pay", json={"invoice": found.group(2)})).json()["preimage"]
    return found.group(1), preimage


async def _item(client, key, slug, **changes):
    body = {
        "slug": slug,
        "title": slug.title(),
        "teaser": "a taste",
        "body": f"# {slug}\nfull text",
        "priceSats": 7,
    }
    body.update(changes)
    response = await client.post("/api/l402/items", json=body, headers=auth(key))
    assert response.status_code == 201, response.text
    return response.json()


async def test_item_is_402_until_paid_then_its_text(client, merchant):
    merchant_id, key = merchant
    item = await _item(client, key, "guide-one")
    catalogue = (await client.get("/api/l402/content?limit=200")).json()
    listed = next(i for i in catalogue["items"] if i["slug"] == "guide-one")
    assert listed["priceSats"] == 7 and "body" not in listed and listed["teaser"] == "a taste"

    token, preimage = await _unlock(client, "/api/l402/content/guide-one")
    mac = macaroon.decode(token)
    assert b"resources=content:guide-one" in mac.caveats and f"merchant={merchant_id}".encode() in mac.caveats
    paid = await client.get(
        "/api/l402/content/guide-one", headers={"authorization": f"L402 {token}:{preimage}"}
    )
    assert paid.status_code == 200 and paid.text == "# guide-one\nfull text"
    assert paid.headers["content-type"].startswith("text/markdown") and paid.headers["payment-receipt"]

    other = await _item(client, key, "guide-two")
    assert (
        await client.get("/api/l402/content/guide-two", headers={"authorization": f"L402 {token}:{preimage}"})
    ).status_code == 402  # a token opens its own item only
    assert item["id"] != other["id"]


async def test_file_items(client, merchant):
    _, key = merchant
    data = bytes(range(256))
    await _item(
        client,
        key,
        "raw-file",
        body=None,
        fileBase64=base64.b64encode(data).decode(),
        fileName="data.bin",
        contentType="application/octet-stream",
    )
    token, preimage = await _unlock(client, "/api/l402/content/raw-file")
    paid = await client.get(
        "/api/l402/content/raw-file", headers={"authorization": f"L402 {token}:{preimage}"}
    )
    assert paid.content == data and 'filename="data.bin"' in paid.headers["content-disposition"]


async def test_bundle_unlocks_each_item(client, make_merchant):
    _, key = await make_merchant()
    for slug in ("b-one", "b-two", "b-three"):
        await _item(client, key, slug, priceSats=3)
    response = await client.get("/api/l402/content/bundle?slugs=b-one,b-two")
    assert response.status_code == 402 and response.json()["priceSats"] == 6
    token, preimage = await _unlock(client, "/api/l402/content/bundle?slugs=b-one,b-two")
    header = {"authorization": f"L402 {token}:{preimage}"}
    bundle = await client.get("/api/l402/content/bundle?slugs=b-one,b-two", headers=header)
    assert bundle.status_code == 200 and [i["slug"] for i in bundle.json()["items"]] == ["b-one", "b-two"]
    assert bundle.json()["items"][0]["body"] == "# b-one\nfull text"
    assert (await client.get("/api/l402/content/b-two", headers=header)).status_code == 200
    assert (await client.get("/api/l402/content/b-three", headers=header)).status_code == 402


async def test_item_management(client, make_merchant):
    _, key = await make_merchant()
    _, other_key = await make_merchant()
    item = await _item(client, key, "managed")
    assert (
        await client.post("/api/l402/items", json={**item, "id": None}, headers=auth(key))
    ).status_code == 400
    taken = await client.post(
        "/api/l402/items",
        json={"slug": "managed", "title": "x", "body": "y", "priceSats": 1},
        headers=auth(other_key),
    )
    assert taken.status_code == 409 and taken.json()["error"] == "slug_taken"
    assert (await client.get(f"/api/l402/items/{item['id']}", headers=auth(other_key))).status_code == 404
    changed = await client.put(
        f"/api/l402/items/{item['id']}", json={"active": False, "priceSats": 9}, headers=auth(key)
    )
    assert changed.status_code == 200 and changed.json()["priceSats"] == 9
    assert (await client.get("/api/l402/content/managed")).status_code == 404  # inactive: not for sale
    assert (await client.delete(f"/api/l402/items/{item['id']}", headers=auth(key))).status_code == 204
    assert (await client.get("/api/l402/items", headers=auth(key))).json()["total"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"slug": "Bad Slug", "title": "t", "body": "b", "priceSats": 1},
        {"slug": "bundle", "title": "t", "body": "b", "priceSats": 1},
        {"slug": "ok", "title": "t", "priceSats": 1},
        {"slug": "ok", "title": "t", "body": "b", "fileBase64": "AA==", "priceSats": 1},
        {"slug": "ok", "title": "t", "fileBase64": "!!notb64", "priceSats": 1},
        {"slug": "ok", "title": "t", "body": "nul\u0000", "priceSats": 1},
        {"slug": "ok", "title": "t", "body": "b", "priceSats": 0},
    ],
)
async def test_bad_items_are_400(client, merchant, body):
    _, key = merchant
    response = await client.post("/api/l402/items", json=body, headers=auth(key))
    assert response.status_code == 400, response.text


async def test_bad_content_requests(client):
    assert (await client.get("/api/l402/content/no-such-item")).status_code == 404
    assert (await client.get("/api/l402/content/" + "x" * 300)).status_code == 404
    assert (
        await client.get("/api/l402/content/bundle?slugs=" + ",".join(f"s{i}" for i in range(30)))
    ).status_code == 400
    assert (await client.get("/api/l402/content/bundle?slugs=,,")).status_code == 400
    assert (await client.get("/api/l402/content/bundle")).status_code == 400
