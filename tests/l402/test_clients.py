"""Conformance with the published clients (test-only dependencies, pinned in requirements.lock):
``lightning-enable-mcp`` (the MCP server's L402 client) and ``l402-requests``.

Their own parsers read every 402 we send, their own credentials are accepted, and each one's
HTTP client pays a real dev-node invoice and retries against a real gateway on loopback.
"""

from __future__ import annotations

import functools
import logging

import httpx
import pytest
from l402_requests import AsyncL402Client, BudgetController, WalletBase
from l402_requests.challenge import (
    L402Challenge,
    MppChallenge,
    MppDraft00Challenge,
    build_payment_credential,
    parse_challenge,
    parse_mpp_challenge,
)
from l402_requests.client import _select_challenge
from l402_requests.credential_cache import L402Credential

logging.getLogger().setLevel(logging.WARNING)  # the MCP package sets the root logger to INFO on import
import lightning_enable_mcp.l402_client as mcp  # noqa: E402
from lightning_enable_mcp.tools._ssrf_guard import is_blocked_ip  # noqa: E402

from tests.helpers import auth  # noqa: E402

PAID = "/api/l402/premium-data"


class DevNodeWallet(WalletBase):
    """Pays through the gateway's dev node: the preimage comes back as a real wallet's would."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.paid: list[str] = []

    async def pay_invoice(self, bolt11: str) -> str:
        async with httpx.AsyncClient(timeout=10) as http:
            result = (await http.post(f"{self.base_url}/api/dev/pay", json={"invoice": bolt11})).json()
        assert result["status"] == "settled", result
        self.paid.append(bolt11)
        return str(result["preimage"])

    def pay_invoice_sync(self, bolt11: str) -> str:  # pragma: no cover - the async client is used
        raise NotImplementedError


async def _402(client) -> tuple[list[str], str]:
    response = await client.get(PAID)
    assert response.status_code == 402
    lines = response.headers.get_list("www-authenticate")
    return lines, response.json()["invoice"]


async def _preimage(client, invoice: str) -> str:
    return (await client.post("/api/dev/pay", json={"invoice": invoice})).json()["preimage"]


async def test_the_clients_parse_every_402_we_send(client):
    lines, invoice = await _402(client)
    l402_line, payment_line = lines
    reader = mcp.L402Client(wallet=None)
    try:
        cases = {
            "L402 only": [l402_line],
            "Payment only": [payment_line],
            "both": lines,
            "both, one line": [", ".join(lines)],
        }
        for name, values in cases.items():
            theirs = reader._select_best_challenge(values)  # what the MCP's fetch() runs
            ours = _select_challenge(httpx.Response(402, headers=[("WWW-Authenticate", v) for v in values]))
            if name == "Payment only":
                assert isinstance(theirs, mcp.MppChallenge) and theirs.is_modern, name
                assert isinstance(ours, MppDraft00Challenge), name
                assert theirs.amount_sats == 10 and not theirs.is_expired()
                assert not ours.is_expired() and ours.invoice == invoice
            else:
                assert isinstance(theirs, mcp.L402Challenge), name  # both prefer L402
                assert isinstance(ours, L402Challenge), name
                assert theirs.invoice == ours.invoice == invoice and theirs.amount_sats == 10
        assert isinstance(parse_challenge(l402_line), L402Challenge)
        modern = mcp.parse_payment_challenge(payment_line)
        assert modern.is_modern and modern.payment_hash and modern.network == "regtest"
        assert isinstance(parse_mpp_challenge(payment_line), MppDraft00Challenge)
        assert isinstance(
            parse_mpp_challenge(
                f'Payment realm="x", method="lightning", invoice="{invoice}", amount="10", currency="sat"'
            ),
            MppChallenge,
        )
    finally:
        await reader.close()


@pytest.mark.parametrize(
    "builder", ["mcp-l402", "l4r-l402", "mcp-modern", "l4r-modern", "mcp-legacy", "l4r-legacy"]
)
async def test_the_clients_credentials_are_accepted(client, builder):
    lines, invoice = await _402(client)
    preimage = await _preimage(client, invoice)
    token = parse_challenge(lines[0]).macaroon
    header = {
        "mcp-l402": lambda: mcp.L402Token(token, preimage).to_header(),
        "l4r-l402": lambda: L402Credential(token, preimage).authorization_header,
        "mcp-modern": lambda: mcp.MppModernToken(
            mcp.parse_payment_challenge(lines[1]).build_modern_credential(preimage.upper())
        ).to_header(),
        "l4r-modern": lambda: build_payment_credential(parse_mpp_challenge(lines[1]), preimage.upper()),
        "mcp-legacy": lambda: mcp.MppToken(preimage).to_header(),
        "l4r-legacy": lambda: L402Credential(None, preimage).authorization_header,
    }[builder]()
    response = await client.get(PAID, headers={"authorization": header})
    assert response.status_code == 200, (header[:40], response.text)
    if "l402" not in builder:  # Payment credentials are single use
        assert (await client.get(PAID, headers={"authorization": header})).status_code == 402


async def test_l402_requests_pays_and_retries(gateway, client, merchant):
    _, key = merchant
    await client.post(
        "/api/l402/items",
        json={"slug": "client-article", "title": "Article", "body": "the article", "priceSats": 3},
        headers=auth(key),
    )
    wallet = DevNodeWallet(gateway.base_url)
    budget = BudgetController(max_sats_per_request=100, allowed_domains={"127.0.0.1"})
    async with AsyncL402Client(wallet=wallet, budget=budget, timeout=10, trust_env=False) as http:
        for path, expected in (
            (PAID, "premium content"),
            ("/api/l402/content/client-article", "the article"),
        ):
            response = await http.get(gateway.base_url + path)
            assert response.status_code == 200, response.text
            assert expected in response.text
            assert response.payment_receipt is not None and response.payment_receipt.reference
        ping = await http.get(gateway.base_url + "/l402/test/ping")
        assert ping.status_code == 200 and ping.json()["pong"] is True
    assert len(wallet.paid) == 3  # one invoice per resource


async def test_the_mcp_client_pays_and_retries(gateway, monkeypatch):
    # The MCP's transport refuses loopback; its factory's own is_blocked seam lets a test through
    # to 127.0.0.1 while private ranges stay refused.
    monkeypatch.setattr(
        mcp,
        "build_ssrf_safe_async_transport",
        functools.partial(
            mcp.build_ssrf_safe_async_transport,
            is_blocked=lambda ip: False if ip.is_loopback else is_blocked_ip(ip),
        ),
    )
    wallet = DevNodeWallet(gateway.base_url)
    fetcher = mcp.L402Client(wallet=wallet)
    try:
        text, sats, receipt = await fetcher.fetch(gateway.base_url + PAID, max_sats=100)
        assert "premium content" in text and sats == 10
        assert receipt and receipt.get("reference") and "preimage" not in str(receipt)
        text, sats, _ = await fetcher.fetch(gateway.base_url + "/l402/test/ping", max_sats=5)
        assert '"pong":true' in text and sats == 1
        with pytest.raises(mcp.L402BudgetExceededError):
            await fetcher.fetch(gateway.base_url + PAID, max_sats=5)
    finally:
        await fetcher.close()
    assert len(wallet.paid) == 2
