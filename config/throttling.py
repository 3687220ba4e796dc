"""DRF throttles counted in Redis: a fixed window per client, one atomic INCR per request
(DRF's own throttles read, modify and write a list in the cache, which races). A refused
request gets 429 with Retry-After (seconds to the window's end). One round trip, on the
process's shared Redis pool (not Django's cache, whose connections are per thread, so per
request under ASGI)."""

from __future__ import annotations

import time

from django.conf import settings
from rest_framework.throttling import BaseThrottle

from common.redis_clients import shared_client

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """ "100/minute" -> (100, 60); DRF's notation (the period's first letter counts)."""
    count, _, period = rate.partition("/")
    return int(count), PERIODS[period[:1]]


class _RedisRateThrottle(BaseThrottle):
    scope = ""
    setting = ""

    def __init__(self):
        self._wait: float | None = None

    def ident(self, request) -> str | None:
        raise NotImplementedError

    def allow_request(self, request, view) -> bool:
        ident = self.ident(request)
        if ident is None:
            return True
        rate = getattr(settings, self.setting)
        limit, period = parse_rate(rate)
        now = time.time()
        window = int(now // period)
        # The rate is part of the key: a changed rate starts with fresh counts.
        key = f"throttle:{self.scope}:{rate}:{ident}:{window}"
        with shared_client(settings.REDIS_URL).pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, period + 1, nx=True)  # the window's first request sets it
            count, _ = pipe.execute()
        if count > limit:
            self._wait = (window + 1) * period - now
            return False
        return True

    def wait(self) -> float | None:
        return self._wait


class UserRateThrottle(_RedisRateThrottle):
    scope, setting = "user", "API_THROTTLE_USER"

    def ident(self, request):
        user = getattr(request, "user", None)
        # The user name, unique like the id, and not reused by a new database's first user.
        return user.get_username() if user is not None and user.is_authenticated else None


class AnonRateThrottle(_RedisRateThrottle):
    scope, setting = "anon", "API_THROTTLE_ANON"

    def ident(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return None
        return self.get_ident(request)
