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


OCCUPYING = [Status.RUNNING, Status.PAUSED, Status.REVIEW]


def slot_free(user_id: int, depth: int) -> bool:
    """Whether a user's top-level run may start now. Sub-graph runs always may: their parent
    holds a slot and waits for them."""
    cap = settings.ENGINE_MAX_RUNNING_PER_USER
    if not cap or depth > 0:
        return True
    _lock_user_runs(user_id)  # two starts must not both take the last slot
    return _occupied(user_id) < cap


def _lock_user_runs(user_id: int) -> None:
    """Until the transaction ends, this user's run starts and ends take turns."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_USER_RUNS_LOCK, user_id])


def _occupied(user_id: int) -> int:
    return GraphExecution.objects.filter(user_id=user_id, depth=0, status__in=OCCUPYING).count()


def oldest_waiting_run(user_id: int):
    """The id of a user's oldest top-level run waiting for a slot, or None."""
    return (
        GraphExecution.objects.filter(user_id=user_id, depth=0, status=Status.QUEUED)
        .order_by("created_at")
        .values_list("id", flat=True)
        .first()
    )


def slot_freed(user_id: int) -> None:
    """A run of the user's ended inside this transaction: if runs of theirs wait, publish
    one `start_waiting` message, whose task starts them one at a time while slots are free
    (runs.start_waiting_runs)."""
    if not settings.ENGINE_MAX_RUNNING_PER_USER:
        return
    # Under the lock of slot_free(): a run started in a request right now either counted
    # this run as ended (our commit came first) or is seen waiting here (its came first).
    _lock_user_runs(user_id)
    if oldest_waiting_run(user_id) is not None:
        dispatch.start_waiting(user_id)


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
