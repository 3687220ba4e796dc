"""Reading executions, always scoped to their owner."""

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.http import Http404

from common import tracing
from common.tracing import trace_id_of

from .engine import TERMINAL
from .models import GraphExecution, NodeExecution
from .stats import FIGURES_SQL, many_node_figures, node_figures, stats_of


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
    """The whole record from one snapshot, in one statement (_RECORD_SQL): the run, its
    live figures and its first page of node executions as they stood at the same instant (a
    run that ends between two reads would otherwise show RUNNING with every node COMPLETED).
    Http404 when the user has no such run."""
    user_id = getattr(user, "pk", user)
    try:
        uuid.UUID(str(execution_id))
    except ValueError as exc:
        raise Http404("execution not found") from exc
    with connection.cursor() as cursor:
        cursor.execute(
            _RECORD_SQL,
            {**_page_params(after=None, limit=NODES_INLINE), "run": str(execution_id),
             "user": user_id, "terminal": list(TERMINAL)},
        )  # fmt: skip
        found = cursor.fetchone()
        if found is None:
            raise Http404("execution not found")
        row = RecordRow(**dict(zip([c.name for c in cursor.description], found, strict=True)))
    return _record_of(row)


def execution_records(executions: list[GraphExecution]) -> list[dict[str, Any]]:
    """execution_record() of each run of a page, the live ones' figures in one query (not
    one per run)."""
    live = many_node_figures([e.pk for e in executions if not _stats_stored(e)])
    return [execution_record(e, live=live.get(e.pk)) for e in executions]


def _stats_stored(execution: GraphExecution) -> bool:
    return execution.status in TERMINAL and bool(execution.stats)


def execution_record(execution: GraphExecution, *, live: dict | None = None) -> dict[str, Any]:
    """The execution record of graphs.md, without its node executions (lists, events). A
    finished run shows the stats stored when it ended; a live one shows them as they stand
    (`live`, when the caller knows them: stats.NOTHING_RAN)."""
    if _stats_stored(execution):
        live = None
    elif live is None:
        live = node_figures(execution.pk)
    row = RecordRow(
        id=execution.pk,
        graph_id=execution.graph_id,
        graph_version=execution.graph_version.version,
        status=execution.status,
        inputs=execution.inputs,
        outputs=execution.outputs,
        error=execution.error,
        stats=execution.stats,
        created_at=execution.created_at,
        started_at=execution.started_at,
        ended_at=execution.ended_at,
        parent_node_execution_id=execution.parent_node_execution_id,
        parent_execution_id=_parent_run_id(execution),
        schedule_id=execution.schedule_id,
        budget=execution.budget,
        dry_run=execution.dry_run,
        rerun_of=execution.rerun_of_id,
        traceparent=execution.traceparent,
        live=live,
        nodes=[],
    )
    return _record_of(row, with_nodes=False)


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


# One page of a run's node executions, in id order. Large values are never loaded: the
# database measures them and sends their first characters.
_PAGE_SQL = """
SELECT n.id, n.node_id, n.block, n.status, n.error, n.attempts, n.cost, n.task_id, n.worker,
       n.queued_at, n.started_at, n.ended_at, n.reused_from, s.input_chars, s.output_chars,
       CASE WHEN s.input_chars <= %(max)s THEN n.input_data END AS input_small,
       CASE WHEN s.input_chars > %(max)s THEN left(n.input_data::text, %(head)s) END
           AS input_head,
       CASE WHEN s.output_chars <= %(max)s THEN n.output_data END AS output_small,
       CASE WHEN s.output_chars > %(max)s THEN left(n.output_data::text, %(head)s) END
           AS output_head
  FROM executions_nodeexecution n,
       LATERAL (SELECT length(n.input_data::text) AS input_chars,
                       length(n.output_data::text) AS output_chars) s
 WHERE n.execution_id = {run} AND n.id > %(after)s
 ORDER BY n.id
 LIMIT %(limit)s
"""

_NODE_PAGE_SQL = f"""
WITH page AS ({_PAGE_SQL.format(run="%(run)s")})
SELECT coalesce(json_agg(page ORDER BY page.id), '[]'::json) FROM page
"""

# The run, its version number and parent run, its live figures (only while it runs: an
# ended run shows those stored at its end) with its sub-graph runs' costs, and its first page.
# RECURSIVE on this outer WITH too: PostgreSQL refused the figures' recursive tree nested in
# it otherwise ("cannot be referenced from this part of the query").
_RECORD_SQL = f"""
WITH RECURSIVE run AS (
    SELECT r.id, r.graph_id, v.version AS graph_version, r.status,
           -- json, not jsonb: Django has psycopg hand jsonb over as text (for JSONField)
           r.inputs::json, r.outputs::json, r.error, r.stats::json, r.created_at,
           r.started_at, r.ended_at,
           r.parent_node_execution_id, p.execution_id AS parent_execution_id, r.schedule_id,
           r.budget, r.dry_run, r.rerun_of_id AS rerun_of, r.traceparent
      FROM executions_graphexecution r
      JOIN graphs_graphversion v ON v.id = r.graph_version_id
      LEFT JOIN executions_nodeexecution p ON p.id = r.parent_node_execution_id
     WHERE r.id = %(run)s AND r.user_id = %(user)s
), tree AS (
    SELECT id FROM run
    UNION
    SELECT c.id FROM executions_graphexecution c
      JOIN executions_nodeexecution pn ON pn.id = c.parent_node_execution_id
      JOIN tree ON pn.execution_id = tree.id
), page AS ({_PAGE_SQL.format(run="(SELECT id FROM run)")})
SELECT run.*,
       CASE WHEN run.status = ANY(%(terminal)s) AND run.stats::text <> '{{}}' THEN NULL
            ELSE ({FIGURES_SQL.format(run="run.id")})
       END AS live,
       (SELECT coalesce(json_agg(page ORDER BY page.id), '[]'::json) FROM page) AS nodes
  FROM run
"""


@dataclass(frozen=True)
class RecordRow:
    """What _RECORD_SQL answers, by column name."""

    id: uuid.UUID
    graph_id: uuid.UUID
    graph_version: int
    status: str
    inputs: Any
    outputs: Any
    error: str | None
    stats: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    parent_node_execution_id: int | None
    parent_execution_id: uuid.UUID | None
    schedule_id: uuid.UUID | None
    budget: int | None
    dry_run: bool
    rerun_of: uuid.UUID | None
    traceparent: str
    live: dict[str, int] | None  # node counts and the tree's cost, while it runs
    nodes: list[dict[str, Any]]  # the page: limit + 1 rows, the last telling there is more


def _page_params(*, after: int | None, limit: int) -> dict[str, Any]:
    return {
        "after": after or 0,
        "limit": limit + 1,  # one more: is there a next page?
        "max": VALUE_PREVIEW_CHARS,
        "head": PREVIEW_HEAD_CHARS,
    }


def _record_of(row: RecordRow, *, with_nodes: bool = True) -> dict[str, Any]:
    run_path = _run_path(row.id)
    live = row.live
    stats = row.stats if live is None else stats_of(live, row.started_at, row.ended_at)
    record: dict[str, Any] = {
        "id": str(row.id),
        "graph_id": str(row.graph_id),
        "graph_version": row.graph_version,
        "status": row.status,
        "inputs": row.inputs,
        "outputs": row.outputs,
        "error": row.error,
        "stats": stats,
        "created_at": row.created_at,
        "started_at": row.started_at,
        "ended_at": row.ended_at,
        # A sub-graph run names the agent_executor node execution (and run) it works for.
        "parent_node_execution_id": row.parent_node_execution_id,
        "parent_execution_id": str(row.parent_execution_id) if row.parent_execution_id else None,
        # A run a schedule started names it (its occurrence names the fire time).
        "schedule_id": str(row.schedule_id) if row.schedule_id else None,
        "budget": row.budget,  # credits the run tree may spend before a person is asked
        "dry_run": row.dry_run,
        "rerun_of": str(row.rerun_of) if row.rerun_of else None,  # the run this one re-runs
        # Its trace in the operator's tracing tool (null when tracing was off).
        "trace_id": trace_id_of(row.traceparent) or None,
    }
    if _chars(row.outputs) > VALUE_PREVIEW_CHARS:
        record["outputs"] = _preview(row.outputs, f"{run_path}outputs/")
    if not with_nodes:
        return record
    page, next_after = _page_of(row.id, row.nodes, NODES_INLINE)
    record["node_executions"] = page
    record["node_executions_next"] = (
        None if next_after is None else f"{run_path}nodes/?after={next_after}"
    )
    return record


def node_page(execution_id, *, after: int | None, limit: int) -> tuple[list[dict], int | None]:
    """Up to `limit` node execution records of the run, in id order, after node execution
    `after`; and the id to ask after for the next page (None: this was the last)."""
    with connection.cursor() as cursor:
        cursor.execute(
            _NODE_PAGE_SQL, {**_page_params(after=after, limit=limit), "run": str(execution_id)}
        )
        (rows,) = cursor.fetchone()
    return _page_of(execution_id, rows, limit)


def _page_of(execution_id, rows: list[dict[str, Any]], limit: int) -> tuple[list[dict], int | None]:
    """Node execution records from _PAGE_SQL's rows (as JSON: timestamps are ISO text)."""
    records = []
    for row in rows[:limit]:
        record: dict[str, Any] = {
            "id": row["id"],
            "node_id": row["node_id"],
            "block": row["block"],
            "status": row["status"],
            "error": row["error"],
            "attempts": row["attempts"],
            "cost": row["cost"],
            "task_id": row["task_id"],
            "worker": row["worker"] or None,
            "queued_at": _time(row["queued_at"]),
            "started_at": _time(row["started_at"]),
            "ended_at": _time(row["ended_at"]),
            "reused_from": row["reused_from"],
        }
        for field, column in (("input_data", "input"), ("output_data", "output")):
            if row[f"{column}_chars"] <= VALUE_PREVIEW_CHARS:
                record[field] = row[f"{column}_small"]
            else:
                href = f"{_run_path(execution_id)}nodes/{row['id']}/"
                record[field] = _preview(row[f"{column}_head"], href, row[f"{column}_chars"])
        records.append(record)
    return records, (rows[limit - 1]["id"] if len(rows) > limit else None)


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def _parent_run_id(execution: GraphExecution) -> uuid.UUID | None:
    if execution.parent_node_execution_id is None:
        return None
    return (
        NodeExecution.objects.filter(id=execution.parent_node_execution_id)
        .values_list("execution_id", flat=True)
        .first()
    )


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
        "reused_from": ne.reused_from,
    }
    if with_values:
        record["input_data"], record["output_data"] = ne.input_data, ne.output_data
    return record


def run_traceparent(execution_id) -> str:
    """The trace context a run started in ("" when tracing is off: no query then)."""
    if not tracing.ENABLED:
        return ""
    found = GraphExecution.objects.filter(id=execution_id).values_list("traceparent", flat=True)
    return next(iter(found), "")
