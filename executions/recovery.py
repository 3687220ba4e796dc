"""Keeping runs alive and the database lean: the watchdog (every ENGINE_WATCHDOG_INTERVAL
seconds) and retention (daily), both run by beat.

The watchdog re-drives runs from the database, the source of truth, whatever was lost: a
start or node message (broker outage at publish, a worker that died between commit and
publish), a chord's counter (Redis flushed or restarted), a node whose worker vanished
without the broker redelivering. Re-publishing is always safe: claims are compare-and-set,
joins claim their members, leases protect nodes whose owner is alive.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from datetime import timedelta

import redis
from celery import current_app as app
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from common import metrics
from credits.selectors import open_token_holds
from credits.tokens import token_hold_release

from . import dispatch, waits
from .control import redispatch_queued
from .engine import PARKED, TERMINAL, Status
from .finishing import execution_finish
from .leases import NodeLease, lease_exists
from .models import GraphExecution, NodeExecution, Recovery
from .propagation import Queued
from .slots import users_at_cap

log = logging.getLogger(__name__)


def watchdog() -> dict[str, int]:
    """One pass; returns how many recoveries of each kind it made. Each run is handled on
    its own: one whose recovery fails (logged, and recorded as a `failed` recovery) does not
    stop the pass for the others."""
    now = timezone.now()
    stalled_since = now - timedelta(seconds=settings.ENGINE_STALL_SECONDS)
    counts = {"deadline": 0, "start": 0, "queued": 0, "join": 0, "orphan": 0, "failed": 0}
    # What the workers' relays have not sent yet (none run, or all are stuck) goes first:
    # it may be all a stalled-looking run is waiting for.
    try:
        counts["outbox"] = dispatch.relay_outbox()
    except Exception:
        log.exception("watchdog: the outbox relay failed")
        counts["failed"] += 1

    def each(run_id, kind: str, step) -> None:
        try:
            with transaction.atomic():
                counts[kind] += step()
        except Exception as exc:
            log.exception("watchdog: the %s recovery of run %s failed", kind, run_id)
            counts["failed"] += 1
            with contextlib.suppress(Exception):  # the database itself may be what failed
                _recorded(run_id, "failed", f"{kind}: {type(exc).__name__}: {exc}")

    for run in GraphExecution.objects.filter(status=Status.RUNNING, deadline__lt=now):
        each(run.pk, "deadline", lambda run=run: _time_out(run))

    waiting = list(
        GraphExecution.objects.filter(
            status=Status.QUEUED, created_at__lt=stalled_since
        ).values_list("id", "user_id", "depth")
    )
    # Runs waiting for a slot under the per-user cap are not stalled; the end of one of
    # their owner's runs starts them.
    full = users_at_cap({user_id for _, user_id, _ in waiting})
    for run_id, user_id, depth in waiting:
        if depth == 0 and user_id in full:
            continue
        each(run_id, "start", lambda run_id=run_id: _restart(run_id))

    stalled = GraphExecution.objects.filter(status=Status.RUNNING).filter(
        Q(progressed_at__lt=stalled_since) | Q(progressed_at=None, started_at__lt=stalled_since)
    )
    for run in stalled.only("id", "graph_version_id"):
        each(run.pk, "queued", lambda run=run: _redispatch(run, stalled_since))
        each(run.pk, "join", lambda run=run: _redrive_joins(run, stalled_since))
        each(run.pk, "orphan", lambda run=run: _redrive_orphans(run, stalled_since))
    # Parked nodes: waits past their deadline are decided (a durable timer fires here), and
    # a decided wait whose wake message was lost is sent again.
    for kind, step in (
        ("waits", waits.waits_past_deadline),
        ("wakes", lambda: waits.wakes_lost(stalled_since)),
    ):
        try:
            counts[kind] = step()
        except Exception:
            log.exception("watchdog: the %s step failed", kind)
            counts["failed"] += 1
    try:
        counts["tokens"] = _release_dead_token_holds()
    except Exception:
        log.exception("watchdog: releasing token holds failed")
        counts["failed"] += 1
    if any(counts.values()):
        log.warning("watchdog recoveries: %s", counts)
    return counts


def _time_out(run: GraphExecution) -> int:
    if execution_finish(
        run.pk, Status.FAILED, stop_running=True, error=f"timed out after {run.time_limit} s"
    ):
        _recorded(run.pk, "deadline", f"wall-clock limit of {run.time_limit} s passed")
        return 1
    return 0


def _restart(run_id) -> int:
    dispatch.start_execution(run_id)
    _recorded(run_id, "start", "start message published again")
    return 1


def _redispatch(run: GraphExecution, stalled_since) -> int:
    n = redispatch_queued(run.pk, run.graph_version_id, older_than=stalled_since)
    if n:
        _recorded(run.pk, "queued", f"{n} queued node task(s) published again")
    return n


def _redrive_joins(run: GraphExecution, stalled_since) -> int:
    """Chords whose members all ended but whose join never ran (its counter was lost)."""
    groups = (
        NodeExecution.objects.filter(execution_id=run.pk, join_id__isnull=False)
        .values("join_id")
        .annotate(
            unfinished=Count("id", filter=Q(status__in=[Status.QUEUED, Status.RUNNING])),
            unjoined=Count("id", filter=Q(propagated=False)),
        )
        .filter(unfinished=0, unjoined__gt=0)
    )
    driven = 0
    for group in groups:
        members = list(
            NodeExecution.objects.filter(join_id=group["join_id"])
            .filter(Q(ended_at__lt=stalled_since) | Q(status__in=list(PARKED)))
            .order_by("id")
            .values_list("id", flat=True)
        )
        total = NodeExecution.objects.filter(join_id=group["join_id"]).count()
        if members and len(members) == total:
            dispatch.send_join(run.pk, run.graph_version_id, members)
            _recorded(run.pk, "join", f"join of {len(members)} node(s) sent again")
            driven += 1
    return driven


def _redrive_orphans(run: GraphExecution, stalled_since) -> int:
    """Nodes RUNNING with no live owner (no lease) for longer than any node may run: their
    worker vanished and nothing redelivered them. A take-over task runs them again."""
    limit = timedelta(seconds=settings.ENGINE_NODE_TIMEOUT_CAP + dispatch.HARD_LIMIT_GRACE)
    candidates = NodeExecution.objects.filter(
        execution_id=run.pk,
        status=Status.RUNNING,
        started_at__lt=min(stalled_since, timezone.now() - limit),
    ).values_list("id", "node_id", "block")
    driven = 0
    for ne_id, node_id, block in candidates:
        if lease_exists(NodeLease(ne_id).key):
            continue
        task_id = str(uuid.uuid4())  # stored, so that a cancel's revoke reaches it
        NodeExecution.objects.filter(id=ne_id).update(task_id=task_id)
        dispatch.take_over(run.pk, run.graph_version_id, Queued(ne_id, node_id, block, task_id))
        _recorded(run.pk, "orphan", f"node execution {ne_id} ({node_id}) taken over")
        driven += 1
    return driven


def hold_task_gone(
    hold_attempt: int, node: tuple[str, int] | None, lease_held: bool, age: float,
    task_lifetime: float,
) -> bool:  # fmt: skip
    """Whether the task that took a language-model call's token hold can no longer settle
    it. `node` is the node execution's (status, attempts), None if it is gone. A task
    settles its calls before it records its node or gives up its lease, so an open hold of
    a node that is no longer RUNNING and whose lease is free, or of an attempt a later one
    took over, belongs to a task that died; and no task outlives its hard time limit."""
    if node is None or age > task_lifetime:
        return True
    status, attempts = node
    if attempts > hold_attempt:
        return True
    return status != Status.RUNNING and not lease_held


def _release_dead_token_holds() -> int:
    """Give back the token holds of calls whose task died mid-call (credits.TokenHold)."""
    holds = open_token_holds(older_than_seconds=settings.ENGINE_NODE_LEASE_SECONDS)
    if not holds:
        return 0
    nodes = {
        pk: (status, attempts)
        for pk, status, attempts in NodeExecution.objects.filter(
            id__in={h.node_execution_id for h in holds}
        ).values_list("id", "status", "attempts")
    }
    lifetime = settings.ENGINE_NODE_TIMEOUT_CAP + dispatch.HARD_LIMIT_GRACE
    released = 0
    for hold in holds:
        node = nodes.get(hold.node_execution_id)
        held = node is not None and lease_exists(NodeLease(hold.node_execution_id).key)
        if not hold_task_gone(hold.attempt, node, held, hold.age_seconds, lifetime):
            continue
        amount = token_hold_release(hold.call, reason="its task ended without settling the call")
        if amount:
            released += 1
            metrics.WATCHDOG_RECOVERIES.labels("tokens").inc()
            log.warning("gave back %d credit(s) held for call %s: its task died", amount, hold.call)
    return released


def _recorded(execution_id, kind: str, detail: str) -> None:
    Recovery.objects.create(execution_id=execution_id, kind=kind, detail=detail)
    transaction.on_commit(metrics.WATCHDOG_RECOVERIES.labels(kind).inc)
    log.warning("recovery %s of run %s: %s", kind, execution_id, detail)


def retention() -> dict[str, int]:
    """Delete finished runs older than EXECUTION_RETENTION_DAYS with their node executions
    (sub-graph runs go with their parents; the credit ledger keeps its rows), and give
    Celery result keys that lost their expiry one again."""
    cutoff = timezone.now() - timedelta(days=settings.EXECUTION_RETENTION_DAYS)
    old = GraphExecution.objects.filter(
        status__in=TERMINAL, ended_at__lt=cutoff, parent_node_execution=None
    ).values_list("id", flat=True)
    deleted = 0
    while batch := list(old[:200]):
        deleted += (
            GraphExecution.objects.filter(id__in=batch)
            .delete()[1]
            .get("executions.GraphExecution", 0)
        )
    return {"executions": deleted, "redis_keys": _expire_stale_result_keys()}


def _expire_stale_result_keys() -> int:
    client = redis.Redis.from_url(app.conf.result_backend)
    expires = (
        int(app.conf.result_expires.total_seconds())
        if hasattr(app.conf.result_expires, "total_seconds")
        else int(app.conf.result_expires or 86400)
    )
    fixed = 0
    try:
        for key in client.scan_iter("celery-task-meta-*", count=1000):
            if client.ttl(key) == -1:
                client.expire(key, expires)
                fixed += 1
    finally:
        client.close()
    return fixed
