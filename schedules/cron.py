"""Cron expressions and their fire times: plain functions, no database, no Celery app.

A schedule fires once at each wall-clock time its expression names, in its own time zone:
- a wall-clock time that happens twice (clocks go back) fires at its first occurrence;
- one that never happens (clocks go forward) fires at the instant it maps to with the offset
  in force before the change (02:30 on a spring-forward night in New York fires at 03:30 EDT).
Fire times are returned in UTC: an aware datetime in the repeated hour compares unequal to
every datetime of another zone (PEP 495), so only display converts them back.

Celery beat's time-zone-aware crontab (django-celery-beat) fires at exactly these instants,
so the times the API shows are the times beat fires; tests/test_schedules.py checks both.

When both day-of-month and day-of-week are restricted, a day must match both (Celery's rule;
Vixie cron would accept either).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from celery.schedules import crontab
from croniter import croniter

FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
# How far before its slot beat may stamp a fire (its clock and ours differ by a little).
FIRE_TOLERANCE = timedelta(seconds=2)
# The furthest back a fire looks for the slot it belongs to (a yearly cron on Feb 29 fits).
LOOKBACK_LIMIT = 1000


class CronInvalid(ValueError):
    """A cron expression or time zone a schedule cannot use; the message says why."""


@dataclass(frozen=True)
class Cron:
    expression: str
    fields: dict[str, str]


def parse(expression: str) -> Cron:
    """A 5-field cron expression (minute hour day-of-month month day-of-week) that both
    croniter and Celery's crontab accept, or CronInvalid."""
    if not isinstance(expression, str):
        raise CronInvalid("cron must be a string of 5 fields")
    parts = expression.split()
    if len(parts) != 5:
        raise CronInvalid(
            f"cron must have 5 fields (minute hour day-of-month month day-of-week), "
            f"got {len(parts)}"
        )
    normalised = " ".join(parts)
    fields = dict(zip(FIELDS, parts, strict=True))
    try:
        croniter(normalised)
        crontab(**fields)  # beat's parser: rejects extensions croniter allows (L, #, W, ?)
    except Exception as exc:  # both libraries raise a variety of ValueError/KeyError kinds
        raise CronInvalid(f"invalid cron expression {normalised!r}: {exc}") from exc
    return Cron(normalised, fields)


def zone(name: str) -> ZoneInfo:
    """An IANA time zone, or CronInvalid (abbreviations like 'EST' and paths are refused)."""
    if not isinstance(name, str) or name not in _zone_names():
        raise CronInvalid(f"unknown time zone {name!r}: use an IANA name like 'Europe/Berlin'")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CronInvalid(f"unknown time zone {name!r}") from exc


def next_fire_times(cron: Cron, tz: ZoneInfo, after: datetime, count: int = 5) -> list[datetime]:
    """The next `count` fire times strictly after `after`."""
    times: list[datetime] = []
    for instant in _instants(cron, tz, after):
        times.append(instant)
        if len(times) == count:
            break
    return times


def fire_times_between(
    cron: Cron, tz: ZoneInfo, start: datetime, end: datetime, limit: int
) -> tuple[list[datetime], int]:
    """Fire times t with start < t < end: the latest `limit` of them, and how many in all."""
    times: list[datetime] = []
    total = 0
    for instant in _instants(cron, tz, start):
        if instant >= end:
            break
        total += 1
        times.append(instant)
        if len(times) > limit:
            times.pop(0)
    return times, total


def latest_fire_time(cron: Cron, tz: ZoneInfo, at: datetime) -> datetime | None:
    """The slot a fire stamped at `at` belongs to: the latest fire time not after it
    (allowing beat a little clock difference), or None if there is none in reach."""
    limit = at + FIRE_TOLERANCE
    wall = limit.astimezone(tz).replace(tzinfo=None) + timedelta(hours=3)
    walls = croniter(cron.expression, wall, day_or=False)
    for _ in range(LOOKBACK_LIMIT):
        # Walk wall-clock slots backwards; around a clock change an instant can sit an hour
        # off its wall-clock neighbour, so keep going a little past the first candidate.
        instant = _instant(walls.get_prev(datetime), tz)
        if instant <= limit:
            best = instant
            for _ in range(3):
                other = _instant(walls.get_prev(datetime), tz)
                if best < other <= limit:
                    best = other
            return best
    return None


def _instants(cron: Cron, tz: ZoneInfo, after: datetime) -> Iterator[datetime]:
    """Fire instants after `after`, increasing, each once."""
    # Start a little early in wall-clock terms so a repeated hour is not stepped over.
    wall = after.astimezone(tz).replace(tzinfo=None) - timedelta(hours=3)
    walls = croniter(cron.expression, wall, day_or=False)
    last = after
    # Wall times skipped by a clock change land an hour (the gap) later, possibly after
    # slots that follow them on the wall clock: hold them until their turn comes.
    moved: list[datetime] = []
    for _ in range(1_000_000):
        wall = walls.get_next(datetime)
        instant = _instant(wall, tz)
        if _skipped(wall, tz):
            heapq.heappush(moved, instant)
            continue
        while moved and moved[0] <= instant:
            early = heapq.heappop(moved)
            if last < early < instant:
                last = early
                yield early
        if instant > last:
            last = instant
            yield instant


def _skipped(wall: datetime, tz: ZoneInfo) -> bool:
    return wall.replace(tzinfo=tz, fold=0).astimezone(tz).replace(tzinfo=None) != wall


def _instant(wall: datetime, tz: ZoneInfo) -> datetime:
    # fold=0: the first of a repeated time; for a skipped time, the offset before the change.
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


_ZONES: frozenset[str] | None = None


def _zone_names() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    return _ZONES
