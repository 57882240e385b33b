"""When a failed delivery is tried again, and which failures are worth another try.

Retried: network errors, timeouts, 408, 429 and 5xx. Not retried: other 4xx, 3xx (redirects are
never followed) and addresses the operator does not allow. The pause before attempt n+1 is
``RETRY_DELAYS[n-1]`` with ±20 % jitter; after the last one the delivery has failed:

    attempt:  1    2    3     4     5      6      7    8    9    10    11    12   13
    after:    0   5s  30s   2m    10m    30m    1h   2h   4h   8h    12h   24h   24h

Thirteen attempts over about 3 days 3 hours. Once an endpoint has failed without a single success
for longer than that whole schedule, each delivery behind the one that exhausted it gets a single
attempt (they would otherwise wait three more days each), so a dead endpoint reaches
``BOLTGATE_WEBHOOK_DISABLE_AFTER`` failed events and is disabled.
"""

from __future__ import annotations

import random
from datetime import timedelta

RETRY_DELAYS = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 43200, 86400, 86400)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
SCHEDULE_SPAN = timedelta(seconds=sum(RETRY_DELAYS))
RETRY_STATUSES = frozenset({408, 429})


def retryable_status(status: int) -> bool:
    return status in RETRY_STATUSES or status >= 500


def next_delay(attempts: int, rng: random.Random | None = None) -> timedelta | None:
    """The pause after ``attempts`` failed attempts, or None when the schedule is exhausted."""
    if attempts >= MAX_ATTEMPTS:
        return None
    base = RETRY_DELAYS[attempts - 1]
    return timedelta(seconds=base * (rng or random).uniform(0.8, 1.2))
