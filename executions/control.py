"""What users do to a run: cancel, pause, resume (including re-opening a failed or cancelled
run). Each is one transaction of compare-and-set moves; tasks go out after commit."""

from __future__ import annotations

import functools
import logging
import random
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import OperationalError, transaction
from django.db.models import F, Q
from django.utils import timezone

from . import dispatch, events
from .engine import Status, awaits_review
from .finishing import execution_finish
from .limits import reserve_node_executions
from .models import GraphExecution, NodeExecution
from .plans import plan_for_version
from .propagation import Propagation, Queued, outputs_of_rows, propagate
from .settling import settle
from .slots import slot_free
from .transitions import move
from .waits import (
    paused_steps_resumed,
    steps_carried_over,
    to_review,
    wakes_of_paused_run,
)

log = logging.getLogger(__name__)


class ConflictingState(Exception):
    """The run is not in a state this action applies to (answered 409)."""


# PostgreSQL's deadlock_detected and serialization_failure: the transaction was rolled back
# whole and may simply run again.
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def retried_on_deadlock(action):
    """Run a user's action again when PostgreSQL chose its transaction as a deadlock's
    victim. A cancel takes the run row, then its node rows; a node finishing at the same
    moment holds its node row and wants the run row: one of the two is rolled back, and
    rolling back the node's task (it retries) or our action (here) is all it costs."""

    @functools.wraps(action)
    def run(*args, **kwargs):
        for attempt in range(1, 6):
            try:
                return action(*args, **kwargs)
            except OperationalError as exc:
                sqlstate = getattr(exc.__cause__, "sqlstate", None)
                if sqlstate not in _RETRYABLE_SQLSTATES or attempt == 5:
                    raise
                log.info("%s: %s, trying again", action.__name__, type(exc.__cause__).__name__)
                time.sleep(random.uniform(0.01, 0.05) * attempt)
        return None

    return run


@retried_on_deadlock
def execution_cancel(execution_id, *, reason: str = "cancelled by its user") -> None:
    """Stop the run now: running node tasks are terminated, queued ones revoked, sub-graph
    runs cancelled; the run and its unfinished nodes end CANCELLED."""
    if not execution_finish(execution_id, Status.CANCELLED, error=reason, stop_running=True):
        raise ConflictingState(f"the run has already ended ({_status(execution_id)})")


@retried_on_deadlock
def execution_pause(execution_id) -> None:
    """Nothing new starts; running nodes finish. The deadline stops running meanwhile."""
    with transaction.atomic():
        runs = GraphExecution.objects.filter(id=execution_id)
        # A run in REVIEW has its clock stopped since it got there.
        moved = move(runs, Status.RUNNING, Status.PAUSED, paused_at=timezone.now()) or move(
            runs, Status.REVIEW, Status.PAUSED
        )
        if moved:
            events.emit_run(execution_id)
    if not moved:
        raise ConflictingState(
            f"only a running run (or one in review) can be paused; this one is "
            f"{_status(execution_id)}"
        )


@retried_on_deadlock
def execution_resume(execution_id) -> None:
    """Carry on from the persisted state: a paused run dispatches what is queued; a failed or
    cancelled run re-runs only what had not completed (completed nodes are neither run nor
    charged again)."""
    with transaction.atomic():
        execution = GraphExecution.objects.select_for_update().filter(id=execution_id).first()
        if execution is None:
            raise ConflictingState("no such run")
        if execution.status == Status.PAUSED:
            _unpause(execution)  # a paused run holds its slot already
        elif execution.status in (Status.FAILED, Status.CANCELLED) and not execution.started_at:
            _requeue(execution)
        elif execution.status in (Status.FAILED, Status.CANCELLED):
            if not slot_free(execution.user_id, execution.depth):
                raise ConflictingState(
                    f"you have {settings.ENGINE_MAX_RUNNING_PER_USER} runs running or paused, "
                    "the most at once (ENGINE_MAX_RUNNING_PER_USER); resume this one when "
                    "one of them ends"
                )
            _reopen(execution)
        else:
            raise ConflictingState(
                "only a paused, failed or cancelled run can be resumed; "
                f"this one is {execution.status}"
            )


def _unpause(execution: GraphExecution) -> None:
    now = timezone.now()
    paused_for = now - (execution.paused_at or now)
    move(
        GraphExecution.objects.filter(id=execution.pk),
        Status.PAUSED,
        Status.RUNNING,
        paused_at=None,
        deadline=F("deadline") + paused_for,
    )
    events.emit_run(execution.pk)
    redispatch_queued(execution.pk, execution.graph_version_id)
    wakes_of_paused_run(execution.pk, execution.graph_version_id)
    paused_steps_resumed(execution.pk)
    execution.refresh_from_db(fields=["active_count", "parked_count", "review_count"])
    if awaits_review(execution.active_count, execution.parked_count, execution.review_count):
        to_review(execution.pk)  # nothing but reviews to go on with


def redispatch_queued(execution_id, version_id: int, *, older_than=None) -> int:
    """Publish every QUEUED node execution of the run again, alone and under a new task id
    (a revoked id would be discarded). Safe if its first message still arrives: only one
    delivery claims the node, and it reads from the row whether it joins a chord."""
    queued = NodeExecution.objects.filter(execution_id=execution_id, status=Status.QUEUED)
    if older_than is not None:
        queued = queued.filter(queued_at__lt=older_than)
    rows = list(queued.only("id", "node_id", "block"))
    groups = []
    for row in rows:
        task_id = str(uuid.uuid4())
        row.task_id, row.join_id = task_id, None
        groups.append([Queued(row.id, row.node_id, row.block, task_id)])
    NodeExecution.objects.bulk_update(rows, ["task_id", "join_id"])
    if groups:
        dispatch.send_groups(execution_id, version_id, groups)
    return len(rows)


def _requeue(execution: GraphExecution) -> None:
    """A run stopped before it started (cancelled while it waited for a slot or for its
    start task) starts from the beginning, through the usual start and its slot check."""
    runs = GraphExecution.objects.filter(id=execution.pk)
    move(runs, execution.status, Status.QUEUED, error=None, ended_at=None, stats={})
    events.emit_run(execution.pk, announce=True)
    dispatch.start_execution(execution.pk)


def _reopen(execution: GraphExecution) -> None:
    """FAILED/CANCELLED -> QUEUED -> RUNNING. Old rows stay as history; what must run again
    gets new node executions (and so new charges)."""
    plan = plan_for_version(execution.graph_version_id)
    nodes = NodeExecution.objects.filter(execution_id=execution.pk)
    # Chord members that finished but were never joined (the run stopped first), and
    # failures some link handled: their outputs travel now.
    unjoined = [
        r
        for r in nodes.filter(
            propagated=False, status__in=[Status.COMPLETED, Status.FAILED]
        ).values("id", "node_id", "status", "output_data")
        if r["status"] == Status.COMPLETED or plan.handles_errors(r["node_id"])
    ]
    # Another go for: nodes stopped while queued or running, failures nobody handled.
    rerun = [
        r
        for r in nodes.filter(
            Q(status=Status.CANCELLED, queued_at__isnull=False) | Q(status=Status.FAILED)
        ).values("id", "node_id", "block", "status", "input_data", "propagated")
        if r["status"] == Status.CANCELLED or not plan.handles_errors(r["node_id"])
    ]
    # Waiting executions the cancel stopped go back to waiting, with what they had.
    waiting = list(
        nodes.filter(status=Status.CANCELLED, queued_at__isnull=True).values(
            "id", "node_id", "block", "input_data"
        )
    )
    passed = reserve_node_executions(execution.pk, len(rerun) + len(waiting))
    if passed:  # raised inside the transaction: nothing of the resume is kept
        raise ConflictingState(f"cannot resume: {passed}")
    # The old rows' pending joins must find nothing left to claim.
    nodes.filter(id__in=[r["id"] for r in unjoined + rerun + waiting]).update(propagated=True)
    now = timezone.now()
    task_ids = [str(uuid.uuid4()) for _ in rerun]
    new_queued = NodeExecution.objects.bulk_create(
        NodeExecution(
            execution_id=execution.pk,
            node_id=r["node_id"],
            block=r["block"],
            status=Status.QUEUED,
            input_data=r["input_data"],
            task_id=task_id,
            queued_at=now,
        )
        for r, task_id in zip(rerun, task_ids, strict=True)
    )
    steps_carried_over({r["id"]: q.pk for r, q in zip(rerun, new_queued, strict=True)})
    NodeExecution.objects.bulk_create(
        NodeExecution(
            execution_id=execution.pk,
            node_id=r["node_id"],
            block=r["block"],
            status=Status.INCOMPLETE,
            input_data=r["input_data"],
        )
        for r in waiting
    )
    runs = GraphExecution.objects.filter(id=execution.pk)
    move(runs, execution.status, Status.QUEUED)
    move(
        runs,
        Status.QUEUED,
        Status.RUNNING,
        error=None,
        ended_at=None,
        outputs={},
        stats={},
        active_count=0,
        parked_count=0,
        review_count=0,
        unhandled_error_count=0,
        paused_at=None,
        deadline=now + timedelta(seconds=execution.time_limit),
    )
    events.emit_run(execution.pk, announce=True)
    result = propagate(execution.pk, plan, outputs_of_rows(unjoined))
    result = Propagation(
        [Queued(r.id, r.node_id, r.block, t) for r, t in zip(new_queued, task_ids, strict=True)]
        + result.queued,
        result.created + len(new_queued) + len(waiting),
        result.waiting,
    )
    events.emit(execution.pk, result.node_events(execution.pk))
    settle(execution.pk, plan, execution.graph_version_id, done=0, result=result, unhandled=0)


def _status(execution_id) -> str:
    status = GraphExecution.objects.filter(id=execution_id).values_list("status", flat=True).first()
    return status or "gone"
