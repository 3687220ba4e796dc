"""DRF throttles counted in Redis: a fixed window per client, one atomic INCR per request
(DRF's own throttles read, modify and write a list in the cache, which races). A refused
request gets 429 with Retry-After (seconds to the window's end)."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

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
        cache.add(key, 0, timeout=period + 1)  # SET NX with expiry: the window's counter
        try:
            count = cache.incr(key)
        except ValueError:  # it expired between the two calls: a new window
            cache.add(key, 1, timeout=period + 1)
            count = 1
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
