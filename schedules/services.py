"""Creating, changing, deleting and firing schedules.

A schedule and its beat task (a django-celery-beat PeriodicTask with its own CrontabSchedule)
change together, in one transaction; beat notices through PeriodicTasks' change stamp.
A fire is recorded as an occurrence, unique per (schedule, fire time), in the transaction
that starts its run: a second fire for the same time starts nothing, and every fire time
says what became of it.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import Http404
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from credits.services import InsufficientCredits
from executions.engine import UNFINISHED_RUN
from executions.runs import execution_create
from graphs.models import Graph, Preset
from graphs.selectors import inputs_checked, version_numbered
from graphs.validation import GraphInvalid

from .cron import Cron, CronInvalid, fire_times_between, latest_fire_time, parse, zone
from .models import Occurrence, Overlap, Schedule

logger = logging.getLogger(__name__)

FIRE_TASK = "schedules.fire"
# Missed fire times recorded at most per fire (the latest ones; the oldest says how many more).
MISSED_RECORD_LIMIT = 100
ACTIVE = list(UNFINISHED_RUN)


class ScheduleInvalid(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ScheduleSpec:
    graph: Graph
    graph_version: int | None
    cron: Cron
    timezone: str
    inputs: dict[str, Any]
    enabled: bool
    overlap: str
    preset: Preset | None
    budget: int | None


FIELDS = (
    "graph_id", "graph_version", "cron", "timezone", "inputs", "enabled", "overlap", "preset_id",
    "budget",
)  # fmt: skip


def schedule_values(schedule: Schedule) -> dict[str, Any]:
    return {f: getattr(schedule, f) for f in FIELDS}


# --- create, change, delete -----------------------------------------------------------------


@transaction.atomic
def schedule_create(*, owner, values: dict[str, Any]) -> Schedule:
    """`values` as the API takes them (graph_id and cron required). Raises ScheduleInvalid
    or GraphInvalid (the inputs) and stores nothing then."""
    defaults: dict[str, Any] = {
        "graph_version": None,
        "timezone": "UTC",
        "inputs": {},
        "enabled": True,
        "overlap": Overlap.SKIP,
        "preset_id": None,
        "budget": None,
    }
    spec = _validated(owner, {**defaults, **values})
    now = timezone.now()
    schedule_id = uuid.uuid4()
    crontab = CrontabSchedule.objects.create(**spec.cron.fields, timezone=spec.timezone)
    task = PeriodicTask.objects.create(
        name=f"schedule {schedule_id}",
        task=FIRE_TASK,
        crontab=crontab,
        kwargs=json.dumps({"schedule_id": str(schedule_id)}),
        enabled=spec.enabled,
        last_run_at=now,  # the first fire is the first fire time from now on
        description=f"graph {spec.graph.pk} of {owner}",
    )
    return Schedule.objects.create(
        id=schedule_id,
        owner=owner,
        periodic_task=task,
        armed_at=now,
        **_stored(spec),
    )


@transaction.atomic
def schedule_update(*, schedule: Schedule, changes: dict[str, Any]) -> Schedule:
    """Applies `changes` (any of FIELDS) after checking the whole result."""
    schedule = Schedule.objects.select_for_update().select_related("owner").get(pk=schedule.pk)
    spec = _validated(schedule.owner, {**schedule_values(schedule), **changes})
    # A new cron, time zone or an enable starts the count of fire times afresh: beat must
    # not catch up on times from before, nor report them missed.
    rearm = (
        spec.cron.expression != schedule.cron
        or spec.timezone != schedule.timezone
        or (spec.enabled and not schedule.enabled)
    )
    now = timezone.now()
    for field, value in _stored(spec).items():
        setattr(schedule, field, value)
    if rearm:
        schedule.armed_at = now
    schedule.save()

    task = PeriodicTask.objects.select_related("crontab").get(pk=schedule.periodic_task_id)
    crontab = task.crontab
    for field, value in spec.cron.fields.items():
        setattr(crontab, field, value)
    crontab.timezone = spec.timezone  # type: ignore[assignment]
    crontab.save()
    task.enabled = spec.enabled
    if rearm:
        task.last_run_at = now
    task.save()  # stamps PeriodicTasks: beat reloads its entries
    return schedule


@transaction.atomic
def schedule_delete(*, schedule: Schedule) -> None:
    schedule.delete()  # signals.py removes its beat task in this transaction


def _validated(owner, values: dict[str, Any]) -> ScheduleSpec:
    graph = Graph.objects.filter(pk=values["graph_id"], owner=owner).first()
    if graph is None:
        raise ScheduleInvalid("graph_id", f"graph {values['graph_id']} not found")
    try:
        cron = parse(values["cron"])
    except CronInvalid as exc:
        raise ScheduleInvalid("cron", str(exc)) from exc
    try:
        zone(values["timezone"])
    except CronInvalid as exc:
        raise ScheduleInvalid("timezone", str(exc)) from exc
    preset = None
    if values["preset_id"] is not None:
        preset = Preset.objects.filter(pk=values["preset_id"], graph=graph).first()
        if preset is None:
            raise ScheduleInvalid("preset_id", "no such preset of this graph")
    own = values["graph_version"]  # stored; the preset's version applies only without it
    number = preset.graph_version if own is None and preset is not None else own
    version = version_numbered(graph, number)
    if version is None:
        raise ScheduleInvalid("graph_version", f"graph {graph.pk} has no version {number}")
    inputs = values["inputs"]
    # Checked with the preset's inputs under them, as a fire would run them; stored alone,
    # so that a change to the preset reaches the schedule's later runs.
    inputs_checked(version, {**preset.inputs, **inputs} if preset is not None else inputs)
    return ScheduleSpec(
        graph=graph,
        graph_version=own,
        cron=cron,
        timezone=values["timezone"],
        inputs=inputs,
        enabled=bool(values["enabled"]),
        overlap=values["overlap"],
        preset=preset,
        budget=values["budget"],
    )


def _stored(spec: ScheduleSpec) -> dict[str, Any]:
    return {
        "graph": spec.graph,
        "graph_version": spec.graph_version,
        "cron": spec.cron.expression,
        "timezone": spec.timezone,
        "inputs": spec.inputs,
        "enabled": spec.enabled,
        "overlap": spec.overlap,
        "preset": spec.preset,
        "budget": spec.budget,
    }


# --- firing ---------------------------------------------------------------------------------


@transaction.atomic
def schedule_fire(schedule_id, stamped_at: datetime) -> Occurrence | None:
    """Beat fired this schedule at `stamped_at`: record the occurrence of the fire time it
    belongs to and start its run, or say why not. Returns None when there is nothing to
    record: the schedule is gone, or that fire time already has its occurrence."""
    # The row lock makes fires of one schedule take turns (overlap checks, missed times).
    schedule = (
        Schedule.objects.select_for_update(of=("self",))
        .select_related("graph", "owner")
        .filter(pk=schedule_id)
        .first()
    )
    if schedule is None:
        logger.warning("schedule %s fired but no longer exists", schedule_id)
        return None
    cron, tz = parse(schedule.cron), zone(schedule.timezone)
    fire_time = latest_fire_time(cron, tz, stamped_at)
    if fire_time is None or fire_time < schedule.armed_at:
        # Beat catching up on a time from before the current cron took effect.
        logger.info("schedule %s: fire at %s is before it was armed", schedule.pk, stamped_at)
        return None
    if Occurrence.objects.filter(schedule=schedule, fire_time=fire_time).exists():
        logger.info("schedule %s: fire time %s already handled", schedule.pk, fire_time)
        return None
    _record_missed(schedule, cron, fire_time)

    def skipped(reason: str, detail: str) -> Occurrence:
        logger.info("schedule %s: %s skipped (%s: %s)", schedule.pk, fire_time, reason, detail)
        return Occurrence.objects.create(
            schedule=schedule, fire_time=fire_time, outcome="skipped", reason=reason, detail=detail
        )

    if not schedule.enabled:
        return skipped(Occurrence.Reason.DISABLED, "the schedule was disabled when beat fired")
    if schedule.overlap == Overlap.SKIP:
        running = schedule.executions.filter(status__in=ACTIVE).values_list("pk", flat=True)
        if previous := running.first():
            return skipped(
                Occurrence.Reason.OVERLAP, f"the previous run {previous} has not finished"
            )
    try:
        execution = execution_create(
            user=schedule.owner,
            graph=schedule.graph,
            inputs=schedule.inputs,
            version=schedule.graph_version,
            schedule_id=schedule.pk,
            preset=schedule.preset,
            budget=schedule.budget,
        )
    except GraphInvalid as exc:
        problems = "; ".join(p["message"] for p in exc.problems[:5])
        return skipped(Occurrence.Reason.GRAPH_INVALID, problems)
    except Http404 as exc:  # the pinned version is gone
        return skipped(Occurrence.Reason.GRAPH_INVALID, str(exc))
    except InsufficientCredits as exc:
        return skipped(Occurrence.Reason.INSUFFICIENT_CREDITS, str(exc))
    Schedule.objects.filter(pk=schedule.pk).update(last_run_at=fire_time)
    logger.info("schedule %s: %s started run %s", schedule.pk, fire_time, execution.pk)
    return Occurrence.objects.create(
        schedule=schedule, fire_time=fire_time, outcome="started", execution=execution
    )


def _record_missed(schedule: Schedule, cron: Cron, fire_time: datetime) -> None:
    """Fire times between the last handled one and this one that beat never fired (it was
    down, or the message was lost) are recorded as skipped: nothing is missed silently."""
    last = schedule.occurrences.order_by("-fire_time").values_list("fire_time", flat=True).first()
    since = max(schedule.armed_at, last) if last else schedule.armed_at
    missed, total = fire_times_between(
        cron, zone(schedule.timezone), since, fire_time, MISSED_RECORD_LIMIT
    )
    if not missed:
        return
    detail = "beat did not fire at this time (it was not running, or its message was lost)"
    rows = [
        Occurrence(
            schedule=schedule,
            fire_time=t,
            outcome="skipped",
            reason=Occurrence.Reason.MISSED,
            detail=detail,
        )
        for t in missed
    ]
    if total > len(missed):
        rows[0].detail += f"; {total - len(missed)} earlier fire times were missed too"
    Occurrence.objects.bulk_create(rows, ignore_conflicts=True)
    logger.warning("schedule %s: %d fire time(s) missed before %s", schedule.pk, total, fire_time)


def occurrences_purge() -> int:
    """Delete occurrences older than the run retention (their runs are gone by then)."""
    cutoff = timezone.now() - timedelta(days=settings.EXECUTION_RETENTION_DAYS)
    return Occurrence.objects.filter(fire_time__lt=cutoff).delete()[0]
