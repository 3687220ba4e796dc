"""Reading executions, always scoped to their owner."""

import json
from typing import Any

from django.db import connection, transaction
from django.db.models import Case, F, JSONField, TextField, Value, When
from django.db.models.functions import Cast, Left, Length
from django.http import Http404

from .engine import TERMINAL
from .models import GraphExecution, NodeExecution
from .stats import execution_stats


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
    if _chars(execution.outputs) > VALUE_PREVIEW_CHARS:
        record["outputs"] = _preview(execution.outputs, f"{_run_path(execution.pk)}outputs/")
    if with_nodes:
        page, next_after = node_page(execution.pk, after=None, limit=NODES_INLINE)
        record["node_executions"] = page
        record["node_executions_next"] = (
            None if next_after is None else f"{_run_path(execution.pk)}nodes/?after={next_after}"
        )
    return record


# A record shows this many node executions; the rest are at node_executions_next.
NODES_INLINE = 500
# A value (a node's input or output, a run's outputs) longer than this many characters of
# JSON is shown as a preview with a link to the whole value.
VALUE_PREVIEW_CHARS = 64 * 1024
PREVIEW_HEAD_CHARS = 2_000


def _run_path(execution_id) -> str:
    return f"/api/executions/{execution_id}/"


def _chars(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), default=str))


def _preview(value_or_head: Any, href: str, chars: int | None = None) -> dict[str, Any]:
    """What stands for a large value: its first characters, its size, where it is whole."""
    head = value_or_head if isinstance(value_or_head, str) else json.dumps(value_or_head)
    return {
        "$preview": head[:PREVIEW_HEAD_CHARS],
        "$chars": chars if chars is not None else _chars(value_or_head),
        "$href": href,
    }


def node_page(execution_id, *, after: int | None, limit: int) -> tuple[list[dict], int | None]:
    """Up to `limit` node execution records of the run, in id order, after node execution
    `after`; and the id to ask after for the next page (None: this was the last). Large
    values are never loaded: the database measures them and sends their first characters."""
    rows = NodeExecution.objects.filter(execution_id=execution_id)
    if after is not None:
        rows = rows.filter(id__gt=after)
    sized: dict[str, Any] = {}
    for field in ("input_data", "output_data"):
        text = Cast(field, TextField())
        sized[f"{field}_chars"] = Length(text)
        sized[f"{field}_small"] = Case(
            When(**{f"{field}_chars__lte": VALUE_PREVIEW_CHARS}, then=F(field)),
            default=Value(None, output_field=JSONField()),
        )
        sized[f"{field}_head"] = Case(
            When(
                **{f"{field}_chars__gt": VALUE_PREVIEW_CHARS},
                then=Left(text, PREVIEW_HEAD_CHARS, output_field=TextField()),
            ),
            default=Value(None),
            output_field=TextField(),
        )
    found = list(
        rows.defer("input_data", "output_data").annotate(**sized).order_by("id")[: limit + 1]
    )
    records = []
    for ne in found[:limit]:
        record = node_execution_record(ne, with_values=False)
        for field in ("input_data", "output_data"):
            small = getattr(ne, f"{field}_small")
            record[field] = (
                small
                if small is not None
                else _preview(
                    getattr(ne, f"{field}_head"),
                    f"{_run_path(execution_id)}nodes/{ne.pk}/",
                    getattr(ne, f"{field}_chars"),
                )
            )
        records.append(record)
    return records, (found[limit - 1].pk if len(found) > limit else None)


def _parent_run_id(execution: GraphExecution) -> str | None:
    if execution.parent_node_execution_id is None:
        return None
    parent = (
        NodeExecution.objects.filter(id=execution.parent_node_execution_id)
        .values_list("execution_id", flat=True)
        .first()
    )
    return str(parent) if parent else None


def node_execution_record(ne: NodeExecution, *, with_values: bool = True) -> dict[str, Any]:
    record = {
        "id": ne.pk,
        "node_id": ne.node_id,
        "block": ne.block,
        "status": ne.status,
        "error": ne.error,
        "attempts": ne.attempts,
        "cost": ne.cost,
        "task_id": ne.task_id,
        "worker": ne.worker or None,
        "queued_at": ne.queued_at,
        "started_at": ne.started_at,
        "ended_at": ne.ended_at,
    }
    if with_values:
        record["input_data"], record["output_data"] = ne.input_data, ne.output_data
    return record
