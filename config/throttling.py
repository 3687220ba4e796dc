"""DRF throttles counted in Redis: a fixed window per client, one atomic INCR per request
(DRF's own throttles read, modify and write a list in the cache, which races). A refused
request gets 429 with Retry-After (seconds to the window's end). One round trip, on the
process's shared Redis pool (not Django's cache, whose connections are per thread, so per
request under ASGI)."""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import BaseThrottle

from common.rates import over_rate


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
        self._wait = over_rate(f"throttle:{self.scope}:{ident}", getattr(settings, self.setting))
        return self._wait is None

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
