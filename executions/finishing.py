"""The end of a run: its terminal status, outputs and stats, what it stops, who is told.

A sub-graph run that ends wakes its parent's waiting node by a task of its own
(dispatch.child_ended, then subgraphs.child_ended), after this transaction commits."""

from __future__ import annotations

import collections
import functools
import json
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from common import metrics
from graphs.models import Graph
from notifications.models import Notification
from notifications.services import notify

from . import dispatch, events
from .dispatch import Queued
from .engine import (
    GRAPH_TRANSITIONS,
    TERMINAL,
    UNFINISHED_RUN,
    Status,
    collect_outputs,
    sources_for,
)
from .models import GraphExecution, NodeExecution
from .slots import slot_freed
from .stats import execution_stats
from .transitions import move
from .waits import waits_of_ended_run

ACTIVE = list(UNFINISHED_RUN)


def execution_finish(
    execution_id, status: str, *, error: str | None = None, stop_running: bool = False
) -> bool:
    """Moves an unfinished run to its terminal status with its outputs and stats. Queued node
    executions are cancelled; with `stop_running` (cancel, time limit) running ones are
    cancelled and their tasks stopped, waiting ones too, and sub-graph runs stopped. A
    sub-graph run that ends hands its outputs to the node waiting for it (a task of its own,
    published after commit)."""
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
            parked_count=0,
            review_count=0,
            paused_at=None,
        )
        if not moved:
            return False
        transaction.on_commit(metrics.EXECUTIONS_FINISHED.labels(status).inc)
        owner = GraphExecution.objects.values_list("user_id", "depth").get(id=execution_id)
        if owner[1] == 0:  # a slot is free: the user's waiting runs may start
            slot_freed(owner[0])
        nodes = NodeExecution.objects.filter(execution_id=execution_id)
        # Parked nodes hold nothing to finish: they stop with the run, their waits with them.
        stopping = [Status.QUEUED, Status.WAITING, Status.REVIEW]
        waits_of_ended_run(
            execution_id, f"the run ended {status}" + (f": {error}" if error else "")
        )
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
        told = status != Status.CANCELLED and not execution.dry_run  # a dry run sends nothing
        if execution.parent_node_execution_id is None and told:
            _notify_run_ended(execution)
        parent_node = execution.parent_node_execution_id
        if parent_node is not None and _still_waiting(parent_node):
            dispatch.child_ended(parent_node, execution.pk)
    return True


def _still_waiting(node_execution_id: int) -> bool:
    """Whether the node that started a sub-graph run still waits for it (a cancelled parent
    stopped it in this same transaction)."""
    return NodeExecution.objects.filter(id=node_execution_id, status=Status.WAITING).exists()


def _notify_run_ended(execution: GraphExecution) -> None:
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
