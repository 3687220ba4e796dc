"""Reading executions, always scoped to their owner."""

from typing import Any

from django.db import connection, transaction
from django.http import Http404

from .engine import TERMINAL
from .models import GraphExecution, NodeExecution
from .services import execution_stats


def executions_of(user):
    return GraphExecution.objects.filter(user=user).order_by("-created_at")


def execution_get(*, user, execution_id) -> GraphExecution:
    try:
        return GraphExecution.objects.select_related("graph_version").get(
            pk=execution_id, user=user
        )
    except GraphExecution.DoesNotExist as exc:
        raise Http404("execution not found") from exc


def execution_detail(*, user, execution_id) -> dict[str, Any]:
    """The whole record from one snapshot: the run's status and its node executions as they
    stood at the same instant (a run that ends between two reads would otherwise show
    RUNNING with every node COMPLETED)."""
    # The isolation level can only be set by a transaction's first statement, so not when
    # this is nested in an outer transaction (as tests are).
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        return execution_record(execution_get(user=user, execution_id=execution_id))


def execution_record(execution: GraphExecution, *, with_nodes: bool = True) -> dict[str, Any]:
    """The execution record of graphs.md. A finished run shows the stats stored when it
    ended; a live one shows them as they stand."""
    stats = execution.stats if execution.status in TERMINAL and execution.stats else None
    record: dict[str, Any] = {
        "id": str(execution.pk),
        "graph_id": str(execution.graph_id),
        "graph_version": execution.graph_version.version,
        "status": execution.status,
        "inputs": execution.inputs,
        "outputs": execution.outputs,
        "error": execution.error,
        "stats": stats or execution_stats(execution),
        "created_at": execution.created_at,
        "started_at": execution.started_at,
        "ended_at": execution.ended_at,
        # A sub-graph run names the agent_executor node execution (and run) it works for.
        "parent_node_execution_id": execution.parent_node_execution_id,
        "parent_execution_id": _parent_run_id(execution),
        # A run a schedule started names it (its occurrence names the fire time).
        "schedule_id": str(execution.schedule_id) if execution.schedule_id else None,
    }
    if with_nodes:
        record["node_executions"] = [
            node_execution_record(ne) for ne in NodeExecution.objects.filter(execution=execution)
        ]
    return record


def _parent_run_id(execution: GraphExecution) -> str | None:
    if execution.parent_node_execution_id is None:
        return None
    parent = (
        NodeExecution.objects.filter(id=execution.parent_node_execution_id)
        .values_list("execution_id", flat=True)
        .first()
    )
    return str(parent) if parent else None


def node_execution_record(ne: NodeExecution) -> dict[str, Any]:
    return {
        "id": ne.pk,
        "node_id": ne.node_id,
        "block": ne.block,
        "status": ne.status,
        "input_data": ne.input_data,
        "output_data": ne.output_data,
        "error": ne.error,
        "attempts": ne.attempts,
        "cost": ne.cost,
        "task_id": ne.task_id,
        "worker": ne.worker or None,
        "queued_at": ne.queued_at,
        "started_at": ne.started_at,
        "ended_at": ne.ended_at,
    }
