"""Free is not unlimited: every user has a budget of worker time per hour.

Every node's run time counts (a free block holds a worker as long as a paid one), against
ENGINE_USER_WORKER_SECONDS_PER_HOUR for the clock hour (UTC). A node of a user whose budget
is used up does not start: it fails, naming the setting and when the budget renews, and so
does its run unless the error is handled (resume it after the renewal). Waiting (sub-graph
runs, the time a node is queued) does not count.

The count lives in Redis, one key per user and hour. Each worker process adds its nodes'
time in batches (a second's worth, or every few seconds) and checks Redis again only when
its own last count said the budget was near: a user can pass the budget by at most what
the other processes have not yet added."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from django.conf import settings

from . import events

_FLUSH_SECONDS = 1.0  # add to Redis once this much time has gathered here...
_FLUSH_EVERY = 5.0  # ...or this long after the last addition
_pending: dict[int, float] = {}
_last_flush: dict[int, float] = {}
_known: dict[int, tuple[int, float]] = {}  # user -> (hour, total) as last seen in Redis


def _hour(now: float) -> int:
    return int(now // 3600)


def _key(user_id: int, hour: int) -> str:
    return f"worker-seconds:{user_id}:{hour}"


def budget_left(user_id: int) -> str | None:
    """None while the user may start a node; otherwise why not."""
    budget = settings.ENGINE_USER_WORKER_SECONDS_PER_HOUR
    if not budget:
        return None
    now = time.time()
    hour = _hour(now)
    known = _known.get(user_id)
    if known is not None and known[0] == hour and known[1] + _pending.get(user_id, 0) < budget:
        return None
    used = float(events.client().get(_key(user_id, hour)) or 0) + _pending.get(user_id, 0)
    _known[user_id] = (hour, used)
    if used < budget:
        return None
    renews = datetime.fromtimestamp((hour + 1) * 3600, tz=UTC).strftime("%H:%M UTC")
    return (
        f"this hour's worker time is used up: {used:.0f} of {budget} s "
        f"(ENGINE_USER_WORKER_SECONDS_PER_HOUR); it renews at {renews}"
    )


def count(user_id: int, seconds: float) -> None:
    """Add a node's run time to its user's hour."""
    if not settings.ENGINE_USER_WORKER_SECONDS_PER_HOUR:
        return
    now = time.time()
    _pending[user_id] = _pending.get(user_id, 0.0) + seconds
    if _pending[user_id] < _FLUSH_SECONDS and now - _last_flush.get(user_id, 0) < _FLUSH_EVERY:
        return
    hour, key = _hour(now), _key(user_id, _hour(now))
    with events.client().pipeline(transaction=False) as pipe:
        pipe.incrbyfloat(key, _pending.pop(user_id))
        pipe.expire(key, 2 * 3600)
        total, _ = pipe.execute()
    _known[user_id] = (hour, float(total))
    _last_flush[user_id] = now
