"""The per-user cap on running run trees (ENGINE_MAX_RUNNING_PER_USER): a sub-graph run
runs inside its root's slot; a run that finds no slot waits QUEUED until one is free."""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.db.models import Count

from . import dispatch
from .engine import Status
from .models import GraphExecution

_USER_RUNS_LOCK = 7_302  # advisory lock namespace: one user's run starts take turns


OCCUPYING = [Status.RUNNING, Status.PAUSED]


def slot_free(user_id: int, depth: int) -> bool:
    """Whether a user's top-level run may start now. Sub-graph runs always may: their parent
    holds a slot and waits for them."""
    cap = settings.ENGINE_MAX_RUNNING_PER_USER
    if not cap or depth > 0:
        return True
    with connection.cursor() as cursor:  # two starts must not both take the last slot
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_USER_RUNS_LOCK, user_id])
    return _occupied(user_id) < cap


def _occupied(user_id: int) -> int:
    return GraphExecution.objects.filter(user_id=user_id, depth=0, status__in=OCCUPYING).count()


def start_waiting_runs(user_id: int) -> int:
    """Publish the start of a user's oldest QUEUED runs, as many as they have free slots;
    returns how many. Each start checks the cap again, so a surplus start is harmless."""
    cap = settings.ENGINE_MAX_RUNNING_PER_USER
    free = cap - _occupied(user_id) if cap else 1_000
    if free <= 0:
        return 0
    waiting = list(
        GraphExecution.objects.filter(user_id=user_id, depth=0, status=Status.QUEUED)
        .order_by("created_at")
        .values_list("id", flat=True)[:free]
    )
    for run_id in waiting:
        dispatch.start_execution(run_id)
    return len(waiting)


def users_at_cap(user_ids) -> set[int]:
    """Of these users, those whose running (or paused) top-level runs fill their cap."""
    cap = settings.ENGINE_MAX_RUNNING_PER_USER
    if not cap:
        return set()
    return set(
        GraphExecution.objects.filter(user_id__in=user_ids, depth=0, status__in=OCCUPYING)
        .values("user_id")
        .annotate(n=Count("id"))
        .filter(n__gte=cap)
        .values_list("user_id", flat=True)
    )
