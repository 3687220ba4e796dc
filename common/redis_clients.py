"""Every Redis client of the project rides out a dropped connection (a Redis restart, a
failover, a network blip, `CLIENT KILL`): it reconnects and retries the command with
exponential backoff and jitter, and checks a connection idle for a while before using it.

redis-py's `Redis(...)` retries by default, but connection pools made on their own (Django's
cache) get connections that retry nothing: the first command on a stale connection failed,
and with it a WebSocket's connect or a request. These options
go to every client and pool. A retried command may in rare cases have run once already
(the reply was lost, not the request): our commands are idempotent or harmless to repeat
(SET NX, GET, XREAD, ZADD, a rate counter's INCR)."""

from __future__ import annotations

import threading
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError, TimeoutError
from redis.retry import Retry

RETRIES = 5
HEALTH_CHECK_SECONDS = 15


def _backoff() -> ExponentialWithJitterBackoff:
    return ExponentialWithJitterBackoff(base=0.05, cap=1.0)


def sync_options() -> dict[str, Any]:
    return {
        "retry": Retry(_backoff(), RETRIES),
        "retry_on_error": [ConnectionError, TimeoutError],
        "health_check_interval": HEALTH_CHECK_SECONDS,
    }


def async_options() -> dict[str, Any]:
    return {
        "retry": AsyncRetry(_backoff(), RETRIES),
        "retry_on_error": [ConnectionError, TimeoutError],
        "health_check_interval": HEALTH_CHECK_SECONDS,
    }


def client(url: str, **options) -> redis.Redis:
    return redis.Redis.from_url(url, **sync_options(), **options)


def async_client(url: str, **options) -> aioredis.Redis:
    return aioredis.from_url(url, **async_options(), **options)


def async_bounded_client(url: str, max_connections: int, **options) -> aioredis.Redis:
    """A client whose pool holds at most `max_connections`, a command waiting (up to 30 s)
    for one to be free rather than failing: for a server process where a thousand sockets
    may ask at once (the default pool refuses the 101st with MaxConnectionsError)."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=30, **async_options(), **options
    )
    return aioredis.Redis(connection_pool=pool)


_shared: dict[str, redis.Redis] = {}
_shared_lock = threading.Lock()


def shared_client(url: str) -> redis.Redis:
    """One client, and so one connection pool, per URL for the whole process, whichever
    thread asks. Under ASGI every request's sync code runs on a thread of its own, and
    Django's cache keeps its connections per thread: each request opened (and resolved,
    and health-checked) a new Redis connection."""
    with _shared_lock:
        if url not in _shared:
            _shared[url] = client(url, socket_timeout=5)
        return _shared[url]
