"""The life of a graph execution: create, start, join fan-ins, settle, finish.

Every step is safe to run twice and to race with itself on another worker:
- state changes are compare-and-set updates that go on only if they moved a row;
- counters change with SQL arithmetic in the transaction that changes what they count;
- tasks are published only after the transaction that queued them commits.
Running one node is in node_runs.py; cancel, pause and resume in control.py.
"""

from __future__ import annotations

import collections
import functools
import json
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from blocks.registry import get_block_class
from common import metrics
from credits.costs import price_of
from credits.services import ensure_balance_covers
from graphs.models import Graph
from graphs.selectors import version_get
from graphs.validation import GraphInvalid, validate_graph_inputs

from . import dispatch, events
from .engine import (
    GRAPH_TRANSITIONS,
    TERMINAL,
    Plan,
    Status,
    collect_outputs,
    final_status,
    first_paid_node,
    sources_for,
    starting_input,
)
from .limits import reserve_node_executions, reserve_subgraph_run
from .models import GraphExecution, NodeExecution
from .plans import plan_for_version
from .propagation import Propagation, Queued, propagate
from .transitions import move

ACTIVE = [Status.QUEUED, Status.RUNNING, Status.PAUSED]

# --- creating and starting ------------------------------------------------------------------


def execution_create(
    *,
    user,
    graph: Graph,
    inputs: Any,
    version: int | None = None,
    parent_node_execution_id: int | None = None,
    depth: int = 0,
    schedule_id=None,
) -> GraphExecution:
    """Validates the run's inputs and records a QUEUED execution; its start is published
    once the record is committed. Raises GraphInvalid on bad input, InsufficientCredits
    when the balance cannot pay the first paid node, and LimitPassed when a sub-graph run
    would pass its tree's ENGINE_MAX_SUBGRAPH_RUNS (nothing is stored either way).

    A sub-graph run names the agent_executor node execution waiting for it; there is one
    child per such node execution, so a repeated start returns the child it already has."""
    if parent_node_execution_id is not None:
        existing = GraphExecution.objects.filter(
            parent_node_execution_id=parent_node_execution_id
        ).first()
        if existing is not None:
            return existing
    graph_version = version_get(graph=graph, version=version)
    plan = plan_for_version(graph_version.pk)
    missing = [n.id for n in plan.nodes.values() if get_block_class(n.block) is None]
    if missing:
        raise GraphInvalid(
            [{"node_id": n, "message": "block no longer exists in the catalogue"} for n in missing]
        )
    nodes = [
        {"id": n.id, "block": n.block, "input_default": n.input_default}
        for n in plan.nodes.values()
    ]
    inputs = validate_graph_inputs(nodes, inputs)
    _ensure_first_paid_node_affordable(user.pk, plan)
    with transaction.atomic():
        run_id = uuid.uuid4()
        root_id = run_id
        if parent_node_execution_id is not None:  # counted in its tree (LimitPassed)
            parent_run = NodeExecution.objects.filter(id=parent_node_execution_id).values(
                "execution_id"
            )
            root_id = reserve_subgraph_run(parent_run[0]["execution_id"])
        execution = GraphExecution.objects.create(
            id=run_id,
            root_id=root_id,
            graph=graph,
            graph_version=graph_version,
            user=user,
            inputs=inputs,
            status=Status.QUEUED,
            node_limit=settings.ENGINE_MAX_NODE_EXECUTIONS,
            subgraph_limit=settings.ENGINE_MAX_SUBGRAPH_RUNS,
            time_limit=settings.ENGINE_MAX_EXECUTION_SECONDS,
            parent_node_execution_id=parent_node_execution_id,
            depth=depth,
            schedule_id=schedule_id,
        )
        events.emit_run(execution.pk)
        dispatch.start_execution(execution.pk)
    return execution


def _ensure_first_paid_node_affordable(user_id: int, plan: Plan) -> None:
    """Refuse a run whose balance cannot pay the first paid node it would reach."""
    first = first_paid_node(plan, price_of)
    if first is not None:
        node_id, price = first
        what = f"the first paid node {node_id!r} ({plan.nodes[node_id].block})"
        ensure_balance_covers(user_id, price.per_run, what)


def execution_start(execution_id) -> None:
    """QUEUED -> RUNNING, then queue the starting nodes. A second call finds nothing to do.
    A user already at ENGINE_MAX_RUNNING_PER_USER keeps the run QUEUED: the end of one of
    their runs starts it (start_waiting_runs)."""
    with transaction.atomic():
        owner = (
            GraphExecution.objects.filter(id=execution_id, status=Status.QUEUED)
            .values_list("user_id", "depth")
            .first()
        )
        if owner is None or not slot_free(*owner):
            return
        now = timezone.now()
        moved = move(
            GraphExecution.objects.filter(id=execution_id),
            Status.QUEUED,
            Status.RUNNING,
            started_at=now,
        )
        if not moved:
            return
        transaction.on_commit(metrics.EXECUTIONS_STARTED.inc)
        execution = GraphExecution.objects.only("graph_version_id", "inputs", "time_limit").get(
            id=execution_id
        )
        GraphExecution.objects.filter(id=execution_id).update(
            deadline=now + timedelta(seconds=execution.time_limit)
        )
        plan = plan_for_version(execution.graph_version_id)
        passed = reserve_node_executions(execution_id, len(plan.starting_nodes))
        if passed:
            events.emit_run(execution_id)
            execution_finish(execution_id, Status.FAILED, error=passed)
            return
        task_ids = [str(uuid.uuid4()) for _ in plan.starting_nodes]
        rows = NodeExecution.objects.bulk_create(
            NodeExecution(
                execution_id=execution_id,
                node_id=node_id,
                block=plan.nodes[node_id].block,
                status=Status.QUEUED,
                task_id=task_id,
                queued_at=now,
                input_data=starting_input(plan.nodes[node_id], execution.inputs),
            )
            for node_id, task_id in zip(plan.starting_nodes, task_ids, strict=True)
        )
        queued = [Queued(r.id, r.node_id, r.block, t) for r, t in zip(rows, task_ids, strict=True)]
        events.emit_run(execution_id)
        events.emit(execution_id, Propagation(queued, 0).node_events(execution_id))
        settle(
            execution_id,
            plan,
            execution.graph_version_id,
            done=0,
            result=Propagation(queued, len(rows)),
            unhandled=0,
        )


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


# --- joining fan-ins ------------------------------------------------------------------------


class JoinNotReady(Exception):
    """Some chord members have not finished yet (the chord fired early); try again later."""


def chord_join(execution_id, version_id: int, member_ids: list[int]) -> None:
    """The callback of a fan-in chord: carries every member's outputs downstream, in member
    order, and queues what became ready. Claims members with compare-and-set, so a repeated
    join does nothing."""
    status = GraphExecution.objects.filter(id=execution_id).values_list("status", flat=True).first()
    if status is None or status in TERMINAL:
        return
    rows = {
        r["id"]: r
        for r in NodeExecution.objects.filter(id__in=member_ids).values(
            "id", "node_id", "status", "output_data"
        )
    }
    if any(r["status"] in (Status.QUEUED, Status.RUNNING) for r in rows.values()):
        raise JoinNotReady(execution_id)
    plan = plan_for_version(version_id)
    with transaction.atomic():
        claimed = set(
            NodeExecution.objects.filter(id__in=member_ids, propagated=False)
            .select_for_update()
            .values_list("id", flat=True)
        )
        if not claimed:
            return
        NodeExecution.objects.filter(id__in=claimed).update(propagated=True)
        members = [rows[i] for i in member_ids if i in claimed]
        result = propagate(execution_id, plan, outputs_of_rows(members))
        events.emit(execution_id, result.node_events(execution_id))
        unhandled = sum(
            1
            for r in members
            if r["status"] == Status.FAILED and not plan.handles_errors(r["node_id"])
        )
        # The join held one unit of the run's active count for itself, and its members
        # theirs: all are released here.
        settle(
            execution_id,
            plan,
            version_id,
            done=len(claimed) + 1,
            result=result,
            unhandled=unhandled,
        )


def outputs_of_rows(rows) -> list[tuple[str, list[tuple[str, Any]]]]:
    """(node_id, [(pin, value)...]) of finished node execution rows, to propagate."""
    return [
        (r["node_id"], [(pin, v) for pin, values in r["output_data"].items() for v in values])
        for r in rows
        if r["status"] in (Status.COMPLETED, Status.FAILED)
    ]


# --- counters and the end of a run ----------------------------------------------------------

# An ended run has nothing active: its count stays 0 whatever still settles late.
_SETTLE_SQL = """
UPDATE executions_graphexecution
   SET active_count = CASE WHEN status IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN 0
                           ELSE active_count + %s END,
       unhandled_error_count = unhandled_error_count + %s, progressed_at = now()
 WHERE id = %s
RETURNING status, active_count, unhandled_error_count
"""


def settle(
    execution_id, plan: Plan, version_id: int, *, done: int, result: Propagation, unhandled: int
) -> None:
    """Books `done` finished units and the newly queued executions on the run's counters, then
    decides: dispatch after commit, hold (paused), or end the run. Called last in the
    transaction, so the run's row stays locked only briefly."""
    groups = dispatch.plan_groups(plan, result.queued)
    chords = [g for g in groups if len(g) > 1]
    for members in chords:  # remembered, so that a lost join can be driven again
        NodeExecution.objects.filter(id__in=[q.id for q in members]).update(join_id=uuid.uuid4())
    added = len(result.queued) + len(chords)  # one unit per join
    with connection.cursor() as cursor:
        cursor.execute(_SETTLE_SQL, [added - done, unhandled, execution_id])
        status, active, unhandled_total = cursor.fetchone()
    settle_decide(
        execution_id,
        version_id,
        groups,
        result.queued,
        Counters(status, active, unhandled_total, result.limit_passed),
    )


@dataclass(frozen=True)
class Counters:
    """The run's counters as the settling statement left them."""

    status: str
    active: int
    unhandled: int
    # Set when what was to be queued would have passed the tree's node limit (limits.py):
    # the message; those executions were not written.
    limit_passed: str | None = None


def settle_decide(
    execution_id, version_id: int, groups: list[list[Queued]], queued: list[Queued],
    counters: Counters,
) -> None:  # fmt: skip
    """What the run's counters, as just updated, mean: dispatch the queued work after
    commit, hold it (paused), cancel it (the run ended or hit its tree's cap), or end the
    run."""
    if counters.status == Status.PAUSED:
        return  # queued work waits for resume, which dispatches it
    if counters.status != Status.RUNNING:
        cancel_queued(queued, execution_id)
        return
    if counters.limit_passed:
        cancel_queued(queued, execution_id)
        execution_finish(execution_id, Status.FAILED, error=counters.limit_passed)
        return
    if counters.active <= 0:
        execution_finish(
            execution_id,
            final_status(counters.unhandled),
            error=_unhandled_message(execution_id) if counters.unhandled else None,
        )
        return
    dispatch.send_groups(execution_id, version_id, groups)


def execution_finish(
    execution_id, status: str, *, error: str | None = None, stop_running: bool = False
) -> bool:
    """Moves an unfinished run to its terminal status with its outputs and stats. Queued node
    executions are cancelled; with `stop_running` (cancel, time limit) running ones are
    cancelled and their tasks terminated, waiting ones too, and sub-graph runs stopped. A
    sub-graph run that ends hands its outputs to the node waiting for it."""
    now = timezone.now()
    with transaction.atomic():
        outputs = _outputs_of(execution_id)
        too_large = _outputs_too_large(outputs)
        if too_large:
            outputs = {}
            if status == Status.COMPLETED:
                status, error = Status.FAILED, too_large
        moved = move(
            GraphExecution.objects.filter(id=execution_id),
            [s for s in sources_for(GRAPH_TRANSITIONS, status) if s not in TERMINAL],
            status,
            ended_at=now,
            error=error,
            active_count=0,  # nothing of an ended run is active (late settles keep it so)
        )
        if not moved:
            return False
        transaction.on_commit(metrics.EXECUTIONS_FINISHED.labels(status).inc)
        owner = GraphExecution.objects.values_list("user_id", "depth").get(id=execution_id)
        if owner[1] == 0 and settings.ENGINE_MAX_RUNNING_PER_USER:
            # A slot is free: the user's next waiting run may start.
            transaction.on_commit(functools.partial(start_waiting_runs, owner[0]))
        nodes = NodeExecution.objects.filter(execution_id=execution_id)
        stopping = [Status.QUEUED]
        if stop_running:
            stopping += [Status.RUNNING, Status.INCOMPLETE]
        stopped = list(
            nodes.filter(status__in=stopping)
            .select_for_update()
            .values_list("id", "node_id", "task_id", "block")
        )
        task_ids = [task_id for _, _, task_id, _ in stopped if task_id]
        move(
            nodes.filter(id__in=[pk for pk, *_ in stopped]),
            stopping,
            Status.CANCELLED,
            ended_at=now,
        )
        count_cancelled(block for *_, block in stopped)
        events.emit(
            execution_id,
            [
                events.node_event(execution_id, pk, node_id, Status.CANCELLED)
                for pk, node_id, *_ in stopped
            ],
        )
        if stop_running:
            for child_id in GraphExecution.objects.filter(
                parent_node_execution__execution_id=execution_id, status__in=ACTIVE
            ).values_list("id", flat=True):
                execution_finish(
                    child_id, Status.CANCELLED, error="its parent run stopped", stop_running=True
                )
            stopped_ids = [pk for pk, *_ in stopped]
            transaction.on_commit(lambda: dispatch.revoke(task_ids, execution_id, stopped_ids))
        execution = GraphExecution.objects.get(id=execution_id)
        execution.outputs = outputs
        execution.stats = execution_stats(execution)
        execution.save(update_fields=["outputs", "stats"])
        events.emit_run(execution_id)  # the terminal event: the run changes no node any more
        if execution.parent_node_execution_id is None and status != Status.CANCELLED:
            _notify_run_ended(execution)
        if execution.parent_node_execution_id is not None:
            from .node_runs import node_complete_from_child

            node_complete_from_child(execution.parent_node_execution_id, execution)
    return True


def _notify_run_ended(execution: GraphExecution) -> None:
    from notifications.models import Notification
    from notifications.services import notify

    graph = Graph.objects.filter(pk=execution.graph_id).values("name", "webhook_url").first()
    name, webhook_url = (graph["name"], graph["webhook_url"]) if graph else ("a graph", "")
    completed = execution.status == Status.COMPLETED
    notify(
        user_id=execution.user_id,
        kind=Notification.Kind.RUN_COMPLETED if completed else Notification.Kind.RUN_FAILED,
        message=f"Run of {name!r} " + ("completed." if completed else f"failed: {execution.error}"),
        data={
            "execution_id": str(execution.pk),
            "graph_id": str(execution.graph_id),
            "status": execution.status,
            "outputs": events.truncate(execution.outputs)[0],
        },
        webhook_url=webhook_url,
    )


def execution_stats(execution: GraphExecution) -> dict[str, Any]:
    """node_count (nodes that ran), node_error_count, cost (this run's and its sub-graph
    runs'), duration in seconds."""
    agg = NodeExecution.objects.filter(execution_id=execution.pk).aggregate(
        ran=Count("id", filter=Q(status__in=[Status.COMPLETED, Status.FAILED, Status.RUNNING])),
        failed=Count("id", filter=Q(status=Status.FAILED)),
        cost=Sum("cost"),
    )
    children = GraphExecution.objects.filter(parent_node_execution__execution_id=execution.pk)
    child_cost = sum(execution_stats(child)["cost"] for child in children)
    end = execution.ended_at or timezone.now()
    duration = (end - execution.started_at).total_seconds() if execution.started_at else 0.0
    return {
        "node_count": agg["ran"],
        "node_error_count": agg["failed"],
        "cost": (agg["cost"] or 0) + child_cost,
        "duration": round(duration, 3),
    }


def _outputs_of(execution_id) -> dict[str, list[Any]]:
    runs = (
        NodeExecution.objects.filter(
            execution_id=execution_id, block="output", status=Status.COMPLETED
        )
        .order_by("id")
        .values_list("input_data", "output_data")
    )
    return collect_outputs((data.get("name"), out.get("output", [])) for data, out in runs)


def _outputs_too_large(outputs: dict[str, list[Any]]) -> str | None:
    """Why a run's combined outputs cannot be kept, or None. The values stay on the output
    nodes' executions; only the run's `outputs` would be too large."""
    limit = settings.ENGINE_MAX_RUN_OUTPUT_BYTES
    size = len(json.dumps(outputs, separators=(",", ":")))
    if size <= limit:
        return None
    return (
        f"the run's outputs come to {size} bytes, more than ENGINE_MAX_RUN_OUTPUT_BYTES "
        f"({limit}); each value is on its output node's execution"
    )


def _unhandled_message(execution_id) -> str:
    failed = (
        NodeExecution.objects.filter(execution_id=execution_id, status=Status.FAILED)
        .order_by("id")
        .values_list("node_id", "error")
        .first()
    )
    return f"node {failed[0]!r} failed: {failed[1]}" if failed else "a node failed"


def count_cancelled(blocks) -> None:
    for block, n in collections.Counter(blocks).items():
        transaction.on_commit(
            functools.partial(metrics.NODE_EXECUTIONS.labels(block, Status.CANCELLED).inc, n)
        )


def cancel_queued(queued: list[Queued], execution_id) -> None:
    if queued:
        move(
            NodeExecution.objects.filter(id__in=[q.id for q in queued]),
            Status.QUEUED,
            Status.CANCELLED,
            ended_at=timezone.now(),
        )
        count_cancelled(q.block for q in queued)
        events.emit(
            execution_id,
            [events.node_event(execution_id, q.id, q.node_id, Status.CANCELLED) for q in queued],
        )


def cancel_if_run_ended(node_execution_id: int) -> None:
    """A task for a node of a run that already ended: the node will never run."""
    row = (
        NodeExecution.objects.filter(id=node_execution_id, execution__status__in=TERMINAL)
        .values_list("execution_id", "node_id")
        .first()
    )
    moved = row is not None and move(
        NodeExecution.objects.filter(id=node_execution_id),
        Status.QUEUED,
        Status.CANCELLED,
        ended_at=timezone.now(),
    )
    if row and moved:
        execution_id, node_id = row
        events.emit(
            execution_id,
            [events.node_event(execution_id, node_execution_id, node_id, Status.CANCELLED)],
        )
