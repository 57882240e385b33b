"""Signatures checked by independent verifiers: the ``standardwebhooks`` package, receivers written
from the spec's words for the other two schemes, and Node's ``JSON.stringify`` for the scheme
whose sample verifier re-serialises the parsed body."""

from __future__ import annotations

import hashlib
import hmac
import shutil
import subprocess
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from boltgate.webhook import events
from boltgate.webhook.signing import new_secret, signature_headers


def body_of(amount: str = "25.00") -> bytes:
    payment = SimpleNamespace(
        id="inv_1",
        order_id="o-1",
        status="paid",
        amount=amount,
        currency="USD",
        amount_sats=25_000,
        paid_at=datetime(2026, 11, 23, 12, 0, 0, 500000, tzinfo=UTC),
        metadata_={"note": "café ☕", "n": [1, 2.5]},
    )
    data = events.payment_data(events.PAYMENT_COMPLETED, payment)
    return events.body("evt_abc", events.PAYMENT_COMPLETED, "2026-11-23T12:00:01Z", data).encode()


def le_verify(header: str, body: bytes, secret: str, now: int) -> bool:
    """``X-LightningEnable-Signature: t=…,v1=…`` as the spec describes it (any v1 may match)."""
    parts = [p.split("=", 1) for p in header.split(",")]
    t = next(v for k, v in parts if k == "t")
    if now - int(t) > 300:
        return False
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return any(k == "v1" and hmac.compare_digest(v, expected) for k, v in parts)


def test_standard_webhooks_package_verifies_our_signature():
    secret = new_secret()
    body = body_of()
    ts = int(datetime.now(UTC).timestamp())
    headers = signature_headers("evt_abc", body, ts, [secret])
    payload = Webhook(secret).verify(body, headers)
    assert payload["id"] == "evt_abc"
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)


def test_lightning_enable_and_gateway_signatures_as_the_spec_describes():
    secret = new_secret()
    body = body_of()
    ts = 1_800_000_000
    headers = signature_headers("evt_abc", body, ts, [secret])
    assert headers["X-LightningEnable-Signature"].startswith(f"t={ts},v1=")
    assert le_verify(headers["X-LightningEnable-Signature"], body, secret, ts + 10)
    assert not le_verify(headers["X-LightningEnable-Signature"], body, secret, ts + 301)  # replay window
    assert not le_verify(headers["X-LightningEnable-Signature"], body, new_secret(), ts)
    gateway = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Gateway-Signature"], gateway)


def test_rotation_overlap_signs_with_both_secrets():
    old, new = new_secret(), new_secret()
    body = body_of()
    ts = int(datetime.now(UTC).timestamp())
    headers = signature_headers("evt_abc", body, ts, [new, old])
    assert le_verify(headers["X-LightningEnable-Signature"], body, new, ts)
    assert le_verify(headers["X-LightningEnable-Signature"], body, old, ts)
    Webhook(new).verify(body, headers)
    Webhook(old).verify(body, headers)
    # the single-signature header keeps the previous secret until the overlap ends
    assert headers["X-Gateway-Signature"] == hmac.new(old.encode(), body, hashlib.sha256).hexdigest()


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.parametrize("amount", ["25.00", "25.50", "0.00000001", "1234567.89"])
def test_body_survives_json_stringify_so_the_gateway_sample_verifier_matches(amount):
    """The integration guide's verifier signs ``JSON.stringify(req.body)``: it must equal our bytes."""
    body = body_of(amount)
    out = subprocess.run(
        ["node", "-e", "process.stdout.write(JSON.stringify(JSON.parse(require('fs').readFileSync(0))))"],
        input=body,
        capture_output=True,
        check=True,
    ).stdout
    assert out == body
