"""Reading schedules, scoped to their owner: another user's schedule is simply not found."""

from datetime import datetime
from typing import Any

from django.http import Http404
from django.utils import timezone

from .cron import next_fire_times, parse, zone
from .models import Occurrence, Schedule

NEXT_RUNS = 5


def schedules_of(user):
    return Schedule.objects.filter(owner=user).order_by("-created_at")


def schedule_get(*, user, schedule_id) -> Schedule:
    try:
        return Schedule.objects.get(pk=schedule_id, owner=user)
    except Schedule.DoesNotExist as exc:
        raise Http404("schedule not found") from exc


def next_runs(schedule: Schedule, now: datetime | None = None) -> list[datetime]:
    """The next fire times in the schedule's time zone (none while it is disabled)."""
    if not schedule.enabled:
        return []
    tz = zone(schedule.timezone)
    times = next_fire_times(parse(schedule.cron), tz, now or timezone.now(), NEXT_RUNS)
    return [t.astimezone(tz) for t in times]


def schedule_record(schedule: Schedule) -> dict[str, Any]:
    return {
        "id": str(schedule.pk),
        "graph_id": str(schedule.graph_id),
        "graph_version": schedule.graph_version,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "inputs": schedule.inputs,
        "preset_id": str(schedule.preset_id) if schedule.preset_id else None,
        "enabled": schedule.enabled,
        "overlap": schedule.overlap,
        "budget": schedule.budget,
        "next_runs": [t.isoformat() for t in next_runs(schedule)],
        "last_run_at": schedule.last_run_at,
        "created_at": schedule.created_at,
        "updated_at": schedule.updated_at,
    }


def occurrences_of(schedule: Schedule):
    return Occurrence.objects.filter(schedule=schedule).order_by("-fire_time")


def occurrence_record(occurrence: Occurrence) -> dict[str, Any]:
    return {
        "id": occurrence.pk,
        "fire_time": occurrence.fire_time,
        "outcome": occurrence.outcome,
        "reason": occurrence.reason or None,
        "detail": occurrence.detail,
        "execution_id": str(occurrence.execution_id) if occurrence.execution_id else None,
        "created_at": occurrence.created_at,
    }
