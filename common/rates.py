"""Fixed-window rate counts in Redis: one atomic INCR per event, on the process's shared
pool. DRF's throttles (config/throttling.py) and webhook triggers count this way."""

from __future__ import annotations

import time

from django.conf import settings

from .redis_clients import shared_client

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """ "100/minute" -> (100, 60); DRF's notation (the period's first letter counts)."""
    count, _, period = rate.partition("/")
    return int(count), PERIODS[period[:1]]


def over_rate(name: str, rate: str) -> float | None:
    """Count one event of `name` against `rate` ("60/minute"); None while within it, else
    the seconds until the window ends. The rate is part of the key: a changed rate starts
    with fresh counts."""
    limit, period = parse_rate(rate)
    now = time.time()
    window = int(now // period)
    key = f"rate:{name}:{rate}:{window}"
    with shared_client(settings.REDIS_URL).pipeline(transaction=False) as pipe:
        pipe.incr(key)
        pipe.expire(key, period + 1, nx=True)  # the window's first event sets it
        count, _ = pipe.execute()
    if count > limit:
        return (window + 1) * period - now
    return None
