"""The server key ring: sealing with the current key, opening with any, sealing again only what
needs it, and the ring as the settings give it."""

from __future__ import annotations

import pytest

from boltgate.config import DEV_SECRET_KEY, ConfigError, Settings
from boltgate.kit.crypto import KeyRing, SealError, SecretBox, derive_key, key_ring

A = "the-old-server-key-" + "a" * 32
B = "the-new-server-key-" + "b" * 32
C = "a-third-server-key-" + "c" * 32


def test_a_value_sealed_with_the_old_key_opens_with_the_ring_and_not_with_the_new_key_alone():
    sealed = SecretBox(A, "webhook-secrets").seal("whsec_abc")
    assert SecretBox(B, "webhook-secrets", previous=(A,)).open(sealed) == "whsec_abc"
    assert SecretBox(B, "webhook-secrets", previous=(C, A)).open(sealed) == "whsec_abc"
    with pytest.raises(SealError):
        SecretBox(B, "webhook-secrets").open(sealed)
    with pytest.raises(SealError):  # the purpose is part of the key and of the associated data
        SecretBox(B, "l402-root-keys", previous=(A,)).open(sealed)


def test_the_ring_seals_with_the_current_key():
    sealed = SecretBox(B, "webhook-secrets", previous=(A,)).seal("whsec_abc")
    assert SecretBox(B, "webhook-secrets").open(sealed) == "whsec_abc"
    with pytest.raises(SealError):
        SecretBox(A, "webhook-secrets").open(sealed)


def test_reseal_moves_a_value_to_the_current_key_once():
    ring = SecretBox(B, "merchant-backends", previous=(A,))
    old = SecretBox(A, "merchant-backends").seal("phoenixd://:pw@host")
    fresh = ring.reseal(old)
    assert fresh is not None and fresh != old
    assert SecretBox(B, "merchant-backends").open(fresh) == "phoenixd://:pw@host"
    assert ring.reseal(fresh) is None  # already under the current key: nothing to do


def test_a_value_no_key_opens_says_so_without_the_value_or_a_key():
    sealed = SecretBox(C, "shopify-secrets").seal("shpat_secret_token")
    for bad in (sealed, "v1.!!!not-base64", "v2.whatever", sealed[:20]):
        with pytest.raises(SealError) as raised:
            SecretBox(B, "shopify-secrets", previous=(A,)).reseal(bad)
        assert raised.value.purpose == "shopify-secrets"
        text = str(raised.value)
        assert bad not in text and "shpat" not in text and A not in text and B not in text


def test_hmac_keys_sign_with_the_current_key_and_accept_every_key_of_the_ring():
    ring = KeyRing((B, A))
    assert ring.key("refund-claim-links") == derive_key(B, "refund-claim-links")
    assert ring.keys("refund-claim-links") == (
        derive_key(B, "refund-claim-links"),
        derive_key(A, "refund-claim-links"),
    )
    with pytest.raises(ValueError, match="at least the current key"):
        KeyRing(())


def test_the_settings_ring_is_the_key_then_the_previous_keys_newest_first():
    settings = Settings(_env_file=None, secret_key=B, secret_key_previous=f" {C} ,, {A},{B}")
    assert key_ring(settings).secrets == (B, C, A)  # blanks and the current key itself dropped
    assert key_ring(Settings(_env_file=None, secret_key=B)).secrets == (B,)
    assert key_ring(Settings(_env_file=None, secret_key=B, secret_key_previous="")).secrets == (B,)


@pytest.mark.parametrize("previous", ["too-short", f"{A},short", DEV_SECRET_KEY])
def test_production_refuses_a_short_or_dev_previous_key(previous: str):
    settings = Settings(
        _env_file=None,
        mode="production",
        secret_key=B,
        secret_key_previous=previous,
        lightning_url="phoenixd://:pw@127.0.0.1:9740",
        rate_providers=["coinbase"],
    )
    with pytest.raises(ConfigError, match="BOLTGATE_SECRET_KEY_PREVIOUS"):
        settings.check_production()
    settings.secret_key_previous = None
    settings.check_production()  # the same settings without it start
