"""The life of a graph execution: create, start, run each node, join fan-ins, finish.

Every step is safe to run twice and to race with itself on another worker:
- state changes are compare-and-set updates that go on only if they moved a row;
- counters change with F()/SQL arithmetic in the transaction that changes what they count;
- tasks are published only after the transaction that queued them commits.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from blocks.base import ERROR_PIN, BlockError, RunContext
from blocks.registry import get_block, get_block_class
from config.json_values import clean_text
from credits.services import (
    InsufficientCredits,
    NodeCharge,
    charge_node_run,
    ensure_can_start,
    settle_node_run,
)
from graphs.models import Graph
from graphs.selectors import version_get
from graphs.validation import GraphInvalid, validate_graph_inputs

from . import dispatch
from .engine import (
    GRAPH_TRANSITIONS,
    TERMINAL,
    Plan,
    Status,
    collect_outputs,
    final_status,
    sources_for,
    starting_input,
)
from .models import GraphExecution, NodeExecution
from .plans import plan_for_version
from .propagation import Propagation, Queued, propagate
from .transitions import move

log = logging.getLogger(__name__)


# --- creating and starting ------------------------------------------------------------------


def execution_create(
    *, user, graph: Graph, inputs: Any, version: int | None = None
) -> GraphExecution:
    """Validates the run's inputs and records a QUEUED execution; its start is published
    once the record is committed. Raises GraphInvalid on bad input and InsufficientCredits
    when the balance cannot pay the first paid node (nothing is stored either way)."""
    graph_version = version_get(graph=graph, version=version)
    plan = plan_for_version(graph_version.pk)
    missing = [n.id for n in plan.nodes.values() if get_block_class(n.block) is None]
    if missing:
        raise GraphInvalid(
            [
                {"node_id": nid, "message": "block no longer exists in the catalogue"}
                for nid in missing
            ]
        )
    nodes = [
        {"id": n.id, "block": n.block, "input_default": n.input_default}
        for n in plan.nodes.values()
    ]
    inputs = validate_graph_inputs(nodes, inputs)
    ensure_can_start(user_id=user.pk, plan=plan)
    with transaction.atomic():
        execution = GraphExecution.objects.create(
            graph=graph,
            graph_version=graph_version,
            user=user,
            inputs=inputs,
            status=Status.QUEUED,
            node_limit=settings.ENGINE_MAX_NODE_EXECUTIONS,
        )
        transaction.on_commit(lambda: dispatch.start_execution(execution.pk))
    return execution


def execution_start(execution_id) -> None:
    """QUEUED -> RUNNING, then queue the starting nodes. A second call finds nothing to do."""
    with transaction.atomic():
        moved = move(
            GraphExecution.objects.filter(id=execution_id),
            Status.QUEUED,
            Status.RUNNING,
            started_at=timezone.now(),
        )
        if not moved:
            return
        execution = GraphExecution.objects.only("graph_version_id", "inputs").get(id=execution_id)
        plan = plan_for_version(execution.graph_version_id)
        now = timezone.now()
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
        _settle(
            execution_id,
            plan,
            execution.graph_version_id,
            done=0,
            result=Propagation(queued, len(rows)),
            unhandled=0,
        )


# --- running one node -----------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimedNode:
    id: int
    execution_id: Any
    node_id: str
    block: str
    input_data: dict[str, Any]
    graph_version_id: int
    user_id: int
    graph_id: Any

    @property
    def payer(self) -> NodeCharge:
        return NodeCharge(
            self.user_id, self.graph_id, self.execution_id, self.id, self.node_id, self.block
        )


_CLAIM_SQL = """
UPDATE executions_nodeexecution AS ne
   SET status = 'RUNNING', started_at = now(), attempts = ne.attempts + 1
  FROM executions_graphexecution AS ge
 WHERE ne.id = %s AND ge.id = ne.execution_id AND ge.status = 'RUNNING'
   AND (ne.status = 'QUEUED' OR (ne.status = 'RUNNING' AND %s))
RETURNING ne.execution_id, ne.node_id, ne.block, ne.input_data, ge.graph_version_id,
          ge.user_id, ge.graph_id
"""


def node_claim(node_execution_id: int, *, take_over: bool = False) -> ClaimedNode | None:
    """QUEUED -> RUNNING while the run is RUNNING; None when another delivery has it, it
    already ended, or the run is not running. `take_over` lets a redelivered task (whose
    first worker died) claim a node left RUNNING."""
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, [node_execution_id, take_over])
        row = cursor.fetchone()
    if row is None:
        _cancel_if_run_ended(node_execution_id)
        return None
    execution_id, node_id, block, input_data, version_id, user_id, graph_id = row
    if isinstance(input_data, str):
        input_data = json.loads(input_data)
    return ClaimedNode(
        node_execution_id, execution_id, node_id, block, input_data, version_id, user_id, graph_id
    )


def node_process(node_execution_id: int, *, take_over: bool, in_chord: bool) -> None:
    """One node task: claim the node, charge its run, run its block, record the result."""
    claimed = node_claim(node_execution_id, take_over=take_over)
    if claimed is None:
        return
    try:
        charge_node_run(claimed.payer)
    except InsufficientCredits as exc:
        node_fail_unpaid(claimed, str(exc))
        return
    started = time.monotonic()
    outputs, error = node_run(claimed)
    node_complete(claimed, outputs, error, in_chord=in_chord, seconds=time.monotonic() - started)


def node_fail_unpaid(claimed: ClaimedNode, reason: str) -> None:
    """A node the balance cannot pay fails without running, and so does its run: nothing
    more starts (nodes already running finish; queued ones are cancelled)."""
    with transaction.atomic():
        moved = move(
            NodeExecution.objects.filter(id=claimed.id), Status.RUNNING, Status.FAILED,
            error=reason, output_data={ERROR_PIN: [reason]}, ended_at=timezone.now(),
        )  # fmt: skip
        if moved:
            execution_finish(
                claimed.execution_id, Status.FAILED,
                error=f"node {claimed.node_id!r} could not run: {reason}",
            )  # fmt: skip


def node_run(claimed: ClaimedNode) -> tuple[list[tuple[str, Any]], str | None]:
    """Runs the block: the (pin, value) pairs it yielded, and its error message if it failed
    (yields before the failure are kept, like a stream that broke)."""
    ctx = RunContext(claimed.user_id, str(claimed.execution_id), claimed.node_id, claimed.id)
    outputs: list[tuple[str, Any]] = []
    try:
        for pin, value in get_block(claimed.block).execute(claimed.input_data, ctx):
            if pin == ERROR_PIN:
                return outputs, str(value)
            outputs.append((pin, value))
    except BlockError as exc:
        return outputs, str(exc)
    except Exception as exc:  # a block's bug must fail its node, not the worker
        log.exception("block %s failed on node execution %s", claimed.block, claimed.id)
        return outputs, f"{type(exc).__name__}: {exc}"
    return outputs, None


def node_complete(
    claimed: ClaimedNode,
    outputs: list[tuple[str, Any]],
    error: str | None,
    *,
    in_chord: bool,
    seconds: float = 0.0,
) -> None:
    """RUNNING -> COMPLETED/FAILED with its outputs. A node dispatched alone then carries its
    outputs downstream in the same transaction; a chord member leaves that to the join."""
    if error is not None:
        error = clean_text(error)
        outputs = [*outputs, (ERROR_PIN, error)]
    output_data: dict[str, list[Any]] = {}
    for pin, value in outputs:
        output_data.setdefault(pin, []).append(value)
    with transaction.atomic():
        moved = move(
            NodeExecution.objects.filter(id=claimed.id),
            Status.RUNNING,
            Status.FAILED if error is not None else Status.COMPLETED,
            output_data=output_data,
            error=error,
            ended_at=timezone.now(),
            propagated=not in_chord,
        )
        if not moved:
            return
        settle_node_run(claimed.payer, seconds=seconds, output_data=output_data)
        if in_chord:
            return
        plan = plan_for_version(claimed.graph_version_id)
        result = propagate(claimed.execution_id, plan, [(claimed.node_id, outputs)])
        unhandled = int(error is not None and not plan.handles_errors(claimed.node_id))
        _settle(
            claimed.execution_id,
            plan,
            claimed.graph_version_id,
            done=1,
            result=result,
            unhandled=unhandled,
        )


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
        sources = [
            (r["node_id"], [(pin, v) for pin, values in r["output_data"].items() for v in values])
            for r in members
            if r["status"] in (Status.COMPLETED, Status.FAILED)
        ]
        result = propagate(execution_id, plan, sources)
        unhandled = sum(
            1
            for r in members
            if r["status"] == Status.FAILED and not plan.handles_errors(r["node_id"])
        )
        # The join held one unit of the run's active count for itself, and its members
        # theirs: all are released here.
        _settle(
            execution_id,
            plan,
            version_id,
            done=len(claimed) + 1,
            result=result,
            unhandled=unhandled,
        )


# --- counters and the end of a run ----------------------------------------------------------

_SETTLE_SQL = """
UPDATE executions_graphexecution
   SET active_count = active_count + %s, node_count = node_count + %s,
       unhandled_error_count = unhandled_error_count + %s
 WHERE id = %s
RETURNING status, active_count, node_count, node_limit, unhandled_error_count
"""


def _settle(
    execution_id, plan: Plan, version_id: int, *, done: int, result: Propagation, unhandled: int
) -> None:
    """Books `done` finished units and the newly queued executions on the run's counters, then
    decides: dispatch after commit, or end the run. Called last in the transaction, so the
    run's row stays locked only briefly."""
    groups = dispatch.plan_groups(plan, result.queued)
    added = len(result.queued) + sum(1 for g in groups if len(g) > 1)  # one unit per join
    with connection.cursor() as cursor:
        cursor.execute(_SETTLE_SQL, [added - done, result.created, unhandled, execution_id])
        status, active, node_count, cap, unhandled_total = cursor.fetchone()
    if status != Status.RUNNING:
        _cancel_queued([q.id for q in result.queued])
        return
    if node_count > cap:
        _cancel_queued([q.id for q in result.queued])
        execution_finish(
            execution_id,
            Status.FAILED,
            error=f"node execution limit reached: a run may create at most {cap}",
        )
        return
    if active <= 0:
        execution_finish(
            execution_id,
            final_status(unhandled_total),
            error=_unhandled_message(execution_id) if unhandled_total else None,
        )
        return
    transaction.on_commit(lambda: dispatch.send_groups(execution_id, version_id, groups))


def execution_finish(execution_id, status: str, *, error: str | None = None) -> bool:
    """Moves a running (or paused) run to its terminal status with its outputs and stats.
    Queued node executions that never started are cancelled; waiting ones stay INCOMPLETE."""
    now = timezone.now()
    with transaction.atomic():
        moved = move(
            GraphExecution.objects.filter(id=execution_id),
            [s for s in sources_for(GRAPH_TRANSITIONS, status) if s not in TERMINAL],
            status,
            ended_at=now,
            error=error,
        )
        if not moved:
            return False
        move(
            NodeExecution.objects.filter(execution_id=execution_id),
            Status.QUEUED,
            Status.CANCELLED,
            ended_at=now,
        )
        execution = GraphExecution.objects.get(id=execution_id)
        execution.outputs = _outputs_of(execution_id)
        execution.stats = execution_stats(execution)
        execution.save(update_fields=["outputs", "stats"])
    return True


def execution_stats(execution: GraphExecution) -> dict[str, Any]:
    agg = NodeExecution.objects.filter(execution_id=execution.pk).aggregate(
        ran=Count("id", filter=Q(status__in=[Status.COMPLETED, Status.FAILED, Status.RUNNING])),
        failed=Count("id", filter=Q(status=Status.FAILED)),
        cost=Sum("cost"),
    )
    end = execution.ended_at or timezone.now()
    duration = (end - execution.started_at).total_seconds() if execution.started_at else 0.0
    return {
        "node_count": agg["ran"],
        "node_error_count": agg["failed"],
        "cost": agg["cost"] or 0,
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


def _unhandled_message(execution_id) -> str:
    failed = (
        NodeExecution.objects.filter(execution_id=execution_id, status=Status.FAILED)
        .order_by("id")
        .values_list("node_id", "error")
        .first()
    )
    return f"node {failed[0]!r} failed: {failed[1]}" if failed else "a node failed"


def _cancel_queued(ids: list[int]) -> None:
    if ids:
        move(
            NodeExecution.objects.filter(id__in=ids),
            Status.QUEUED,
            Status.CANCELLED,
            ended_at=timezone.now(),
        )


def _cancel_if_run_ended(node_execution_id: int) -> None:
    """A task for a node of a run that already ended: the node will never run."""
    move(
        NodeExecution.objects.filter(id=node_execution_id, execution__status__in=TERMINAL),
        Status.QUEUED,
        Status.CANCELLED,
        ended_at=timezone.now(),
    )
