"""Identifiers and timestamps as the API shows them."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

from boltgate.kit.clock import rfc3339
from boltgate.kit.ids import BASE62, hash_api_key, new_api_key, new_id


def test_ids_and_keys_have_their_documented_shapes():
    assert re.fullmatch(r"inv_[0-9A-Za-z]{20}", new_id("inv"))
    assert re.fullmatch(r"le_live_[0-9A-Za-z]{40}", new_api_key())
    assert re.fullmatch(r"le_test_[0-9A-Za-z]{40}", new_api_key(test=True))
    assert len({new_id("inv") for _ in range(10_000)}) == 10_000
    assert hash_api_key("k") == hash_api_key("k") != hash_api_key("l")


def test_id_characters_are_spread_over_the_whole_alphabet():
    counts = Counter("".join(new_id("x")[2:] for _ in range(6_200)))
    assert set(counts) == set(BASE62)
    expected = 6_200 * 20 / 62
    assert all(abs(n - expected) < expected * 0.15 for n in counts.values())


def test_rfc3339_is_utc_with_z_and_at_most_six_digits():
    assert rfc3339(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05Z"
    assert rfc3339(datetime(2026, 1, 2, 3, 4, 5, 120, tzinfo=UTC)) == "2026-01-02T03:04:05.000120Z"
    plus_two = timezone(timedelta(hours=2))
    assert rfc3339(datetime(2026, 1, 2, 3, 4, 5, tzinfo=plus_two)) == "2026-01-02T01:04:05Z"
    assert rfc3339(None) is None
