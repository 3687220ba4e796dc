"""Parked nodes: a node whose block waits (for a child run, a timer, an event or a person)
leaves its worker and waits in the database, holding no worker, message or lease.

    park      RUNNING -> WAITING | REVIEW, with a pending Wait (node_park)
    decide    the Wait pending -> approved | rejected | timed_out | woken, once, by
              compare-and-set (wait_decide: a review's decision, an event, the child run's
              end, the watchdog past its deadline); its node's task goes out on commit
    resume    a worker claims the node back to RUNNING (claims.py: a parked node whose latest
              wait is decided) and runs the block's `resume` with the decision

The run's counters say what is parked (parked_count, review_count, inside active_count): a
run whose every active unit is parked, a review among them, is REVIEW (its clock stopped),
and RUNNING again on the decision. Everything here survives any process's restart: the
rows are the state, the outbox carries the wake, and the watchdog times waits out and
publishes a decided wake again if its message was lost.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from blocks.waiting import WaitFor
from common.tracing import continued
from graphs.models import Graph
from notifications.models import Notification
from notifications.services import notify

from . import dispatch, events
from .dispatch import Queued
from .engine import PARKED, Status, awaits_review
from .models import GraphExecution, NodeExecution, Wait
from .selectors import run_traceparent
from .stopping import NodeStopped
from .transitions import move

REVIEW_KINDS = (Wait.Kind.REVIEW, Wait.Kind.APPROVAL, Wait.Kind.BUDGET)


@dataclass(frozen=True)
class ParkingNode:
    """The node execution being parked, as its worker knows it."""

    id: int
    execution_id: Any
    node_id: str
    user_id: int


def node_park(
    node: ParkingNode, request: WaitFor, *, kind: str | None = None, child_execution_id=None
) -> Wait:
    """RUNNING -> WAITING (REVIEW for a review) with its pending Wait, counted on the run, in
    one transaction (the caller's, if any: a sub-graph's child run is created in it). Raises
    NodeStopped when the node is no longer RUNNING (its run was cancelled meanwhile)."""
    kind = kind or request.kind
    review = kind in REVIEW_KINDS
    parked_as = Status.REVIEW if review else Status.WAITING
    now = timezone.now()
    with transaction.atomic():
        moved = move(
            NodeExecution.objects.filter(id=node.id),
            Status.RUNNING,
            parked_as,
        )
        if not moved:
            raise NodeStopped(node.id)
        wait = Wait.objects.create(
            node_execution_id=node.id,
            execution_id=node.execution_id,
            user_id=node.user_id,
            node_id=node.node_id,
            kind=kind,
            key=request.key,
            child_execution_id=child_execution_id,
            data=request.data,
            message=request.message,
            editable=request.editable,
            on_timeout=request.on_timeout,
            deadline=_deadline(now, request.seconds, kind),
        )
        counters = _counted(node.execution_id, parked=1, reviews=int(review))
        events.emit(
            node.execution_id, [_wait_event(wait, Status.REVIEW if review else Status.WAITING)]
        )
        if counters.status == Status.RUNNING and awaits_review(
            counters.active, counters.parked, counters.reviews
        ):
            to_review(node.execution_id)
        if review:
            _review_requested(wait)
    return wait


def _deadline(now, seconds: float | None, kind: str):
    """A wait's deadline: its own, capped by ENGINE_MAX_WAIT_SECONDS (every wait but a child
    run's ends some day; a child run has its own time limit)."""
    cap = settings.ENGINE_MAX_WAIT_SECONDS
    if kind == Wait.Kind.SUBGRAPH:
        return None
    return now + timedelta(seconds=min(seconds if seconds is not None else cap, cap))


def wait_decide(
    wait_id, status: str, *, payload: Any = None, response: str = "", decided_by: int | None = None,
    expected_kinds: tuple[str, ...] | None = None,
) -> Wait | None:  # fmt: skip
    """pending -> `status`, once: the Wait if this call decided it, None if it was decided
    already (or is not of `expected_kinds`). The node's run books it (a REVIEW run is
    RUNNING again) and, if the run is running, its task goes out after commit to resume the
    block; a paused run sends it when resumed."""
    with transaction.atomic():
        waits = Wait.objects.filter(pk=wait_id, status=Wait.State.PENDING)
        if expected_kinds is not None:
            waits = waits.filter(kind__in=expected_kinds)
        decided = waits.update(
            status=status,
            payload=payload,
            response=response,
            decided_by_id=decided_by,
            decided_at=timezone.now(),
        )
        if not decided:
            return None
        wait = Wait.objects.get(pk=wait_id)
        counters = _counted(wait.execution_id, parked=-1, reviews=-int(wait.kind in REVIEW_KINDS))
        node_status = Status.REVIEW if wait.kind in REVIEW_KINDS else Status.WAITING
        events.emit(wait.execution_id, [_wait_event(wait, node_status)])
        run_status = counters.status
        if run_status == Status.REVIEW:
            _review_over(wait.execution_id, counters.paused_at)
            run_status = Status.RUNNING
        if run_status == Status.RUNNING:
            wake_send(wait.execution_id, counters.version_id, wait.node_execution_id)
    return wait


def wake_send(execution_id, version_id: int, node_execution_id: int) -> None:
    """The task that claims a parked node back (under a new task id, which a cancel's
    revoke reaches), published after commit."""
    row = NodeExecution.objects.filter(id=node_execution_id).values("node_id", "block").first()
    if row is None:
        return
    task_id = str(uuid.uuid4())
    NodeExecution.objects.filter(id=node_execution_id).update(task_id=task_id)
    queued = Queued(node_execution_id, row["node_id"], row["block"], task_id)
    # Decided by a person, an event or a timer, each in a trace of its own: the node goes on
    # in its run's.
    with continued(run_traceparent(execution_id)):
        dispatch.send_groups(execution_id, version_id, [[queued]])


def step_save(node: ParkingNode, state: Any) -> bool:
    """A running block's progress, committed (RunContext.checkpoint): the node's latest wait,
    decided from the start, so that a take-over resumes from it. Each step replaces the
    node's last one, unless a real wait came between. If the run is paused, the node parks
    here instead (a `pause` wait, woken by the resume): True then."""
    if GraphExecution.objects.filter(pk=node.execution_id, status=Status.PAUSED).exists():
        with contextlib.suppress(NodeStopped):  # cancelled meanwhile: it stops anyway
            node_park(node, WaitFor(Wait.Kind.PAUSE, data=state), kind=Wait.Kind.PAUSE)
        return True
    latest = (
        Wait.objects.filter(node_execution_id=node.id).order_by("-created_at").only("kind").first()
    )
    now = timezone.now()
    if latest is not None and latest.kind == Wait.Kind.STEP:
        Wait.objects.filter(pk=latest.pk).update(payload=state, decided_at=now)
        return False
    Wait.objects.create(
        node_execution_id=node.id, execution_id=node.execution_id, user_id=node.user_id,
        node_id=node.node_id, kind=Wait.Kind.STEP, status=Wait.State.WOKEN, payload=state,
        decided_at=now,
    )  # fmt: skip
    return False


def paused_steps_resumed(execution_id) -> None:
    """A resumed run's nodes parked at a step while it was paused go on from that step."""
    for wait_id, state in Wait.objects.filter(
        execution_id=execution_id, kind=Wait.Kind.PAUSE, status=Wait.State.PENDING
    ).values_list("pk", "data"):
        wait_decide(wait_id, Wait.State.WOKEN, payload=state)


def steps_carried_over(new_of_old: dict[int, int]) -> None:
    """A re-opened run's new node executions start from the last step their old ones
    committed (an agent goes on from its last answer, not from the start)."""
    latest: dict[int, Wait] = {}
    for wait in Wait.objects.filter(node_execution_id__in=list(new_of_old)).order_by("created_at"):
        latest[wait.node_execution_id] = wait
    Wait.objects.bulk_create(
        Wait(
            node_execution_id=new_of_old[old],
            execution_id=wait.execution_id,
            user_id=wait.user_id,
            node_id=wait.node_id,
            kind=Wait.Kind.STEP,
            status=Wait.State.WOKEN,
            payload=wait.payload,
            decided_at=timezone.now(),
        )
        for old, wait in latest.items()
        if wait.kind == Wait.Kind.STEP
    )


def events_deliver(user_id: int, key: str, payload: Any, *, graph_id=None) -> int:
    """An event: wakes every pending `wait_for_event` wait of the user's runs (of one graph,
    if given) on `key` with `payload`; how many woke."""
    waiting = Wait.objects.filter(
        user_id=user_id, kind=Wait.Kind.EVENT, key=key, status=Wait.State.PENDING
    )
    if graph_id is not None:
        waiting = waiting.filter(execution__graph_id=graph_id)
    woken = 0
    for wait_id in waiting.values_list("pk", flat=True):
        woken += wait_decide(wait_id, Wait.State.WOKEN, payload=payload) is not None
    return woken


def waits_past_deadline(limit: int = 500) -> int:
    """The watchdog's part: every pending wait whose deadline passed is decided (a timer
    fires, other waits time out); returns how many."""
    due = Wait.objects.filter(status=Wait.State.PENDING, deadline__lte=timezone.now()).order_by(
        "deadline"
    )
    decided = 0
    for wait_id, kind in due.values_list("pk", "kind")[:limit]:
        status = Wait.State.WOKEN if kind == Wait.Kind.TIMER else Wait.State.TIMED_OUT
        decided += wait_decide(wait_id, status) is not None
    return decided


def wakes_lost(stalled_since) -> int:
    """Decided waits whose node is still parked in a running run long after the decision
    (its message was lost): their tasks go out again; a duplicate claims nothing."""
    pending = Wait.objects.filter(node_execution=OuterRef("node_execution"), status="pending")
    lost = (
        Wait.objects.filter(
            decided_at__lt=stalled_since,
            node_execution__status__in=list(PARKED),
            execution__status=Status.RUNNING,
        )
        .exclude(status=Wait.State.PENDING)
        .filter(~Exists(pending))
        .values_list("execution_id", "execution__graph_version_id", "node_execution_id")
        .distinct()
    )
    sent = 0
    for execution_id, version_id, node_execution_id in lost[:500]:
        with transaction.atomic():
            wake_send(execution_id, version_id, node_execution_id)
        sent += 1
    return sent


def wakes_of_paused_run(execution_id, version_id: int) -> int:
    """A resumed run's parked nodes whose waits were decided while it was paused."""
    pending = Wait.objects.filter(node_execution=OuterRef("node_execution"), status="pending")
    nodes = (
        Wait.objects.filter(execution_id=execution_id, node_execution__status__in=list(PARKED))
        .exclude(status=Wait.State.PENDING)
        .filter(~Exists(pending))
        .values_list("node_execution_id", flat=True)
        .distinct()
    )
    ids = list(nodes)
    for node_execution_id in ids:
        wake_send(execution_id, version_id, node_execution_id)
    return len(ids)


def waits_of_ended_run(execution_id, reason: str) -> None:
    """A run that ended leaves nothing waiting: its pending reviews are rejected (with the
    reason), its other waits cancelled. Called in the transaction that ends it."""
    now = timezone.now()
    pending = Wait.objects.filter(execution_id=execution_id, status=Wait.State.PENDING)
    pending.filter(kind__in=REVIEW_KINDS).update(
        status=Wait.State.REJECTED, response=reason, decided_at=now
    )
    pending.update(status=Wait.State.CANCELLED, response=reason, decided_at=now)


def to_review(execution_id) -> None:
    """RUNNING -> REVIEW: only waits are left, a review among them. Its clock stops."""
    if move(
        GraphExecution.objects.filter(id=execution_id),
        Status.RUNNING,
        Status.REVIEW,
        paused_at=timezone.now(),
    ):
        events.emit_run(execution_id)


def _review_over(execution_id, review_since) -> None:
    """REVIEW -> RUNNING: its deadline moves on by the time it spent in review."""
    now = timezone.now()
    move(
        GraphExecution.objects.filter(id=execution_id),
        Status.REVIEW,
        Status.RUNNING,
        paused_at=None,
        deadline=F("deadline") + (now - (review_since or now)),
    )
    events.emit_run(execution_id)


@dataclass(frozen=True)
class ParkCounters:
    """The run's counters after _COUNT_SQL."""

    status: str
    active: int
    parked: int
    reviews: int
    paused_at: Any
    version_id: int


_COUNT_SQL = """
UPDATE executions_graphexecution
   SET parked_count = parked_count + %s, review_count = review_count + %s,
       progressed_at = now()
 WHERE id = %s
RETURNING status, active_count, parked_count, review_count, paused_at, graph_version_id
"""


def _counted(execution_id, *, parked: int, reviews: int) -> ParkCounters:
    with connection.cursor() as cursor:
        cursor.execute(_COUNT_SQL, [parked, reviews, execution_id])
        status, active, parked_now, reviews_now, paused_at, version_id = cursor.fetchone()
    return ParkCounters(status, active, parked_now, reviews_now, paused_at, version_id)


def _wait_event(wait: Wait, node_status: str) -> dict[str, Any]:
    """The node's event for its wait: parked, or its wait decided (still parked until a
    worker claims it back)."""
    event = events.node_event(wait.execution_id, wait.node_execution_id, wait.node_id, node_status)
    event["wait"] = {
        "id": str(wait.pk),
        "kind": wait.kind,
        "status": wait.status,
        "deadline": wait.deadline.isoformat() if wait.deadline else None,
    }
    if wait.response:
        event["wait"]["message"] = wait.response
    return event


def _review_requested(wait: Wait) -> None:
    """The run's owner is told what to decide: in-app, by e-mail when opted in, and on the
    graph's webhook (after commit, like every notification)."""
    run = GraphExecution.objects.values("graph_id").get(pk=wait.execution_id)
    graph = Graph.objects.filter(pk=run["graph_id"]).values("name", "webhook_url").first()
    name, webhook_url = (graph["name"], graph["webhook_url"]) if graph else ("a graph", "")
    what = "may run" if wait.kind == Wait.Kind.APPROVAL else "review"
    notify(
        user_id=wait.user_id,
        kind=Notification.Kind.REVIEW_REQUESTED,
        message=(
            f"Run of {name!r} waits for your decision on node "
            f"{wait.node_id!r} ({what}): {wait.message}"
        ).strip(),
        data={
            "review_id": str(wait.pk),
            "execution_id": str(wait.execution_id),
            "graph_id": str(run["graph_id"]),
            "node_id": wait.node_id,
            "data": events.truncate(wait.data)[0],
            "deadline": wait.deadline.isoformat() if wait.deadline else None,
        },
        webhook_url=webhook_url,
    )
