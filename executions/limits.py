"""A run tree's limits, counted on its root's row and checked before anything is written.

A run tree is a top-level run and every sub-graph run under it. However deep it nests and
however wide it fans out, the tree may create at most `node_limit` node executions
(ENGINE_MAX_NODE_EXECUTIONS when it started) and `subgraph_limit` sub-graph runs
(ENGINE_MAX_SUBGRAPH_RUNS). Each reservation is one UPDATE of the root's row that succeeds
only within the limit, so the rows past a limit are never inserted, and two workers racing
for the last place serialise on that row."""

from __future__ import annotations

import json

from django.db import connection

from .models import GraphExecution, NodeExecution


def node_limit_message(limit: int) -> str:
    return (
        f"node execution limit reached: a run and its sub-graph runs may create at most "
        f"{limit} node executions (ENGINE_MAX_NODE_EXECUTIONS)"
    )


def subgraph_limit_message(limit: int) -> str:
    return (
        f"sub-graph limit reached: a run may start at most {limit} sub-graph runs, however "
        "deep (ENGINE_MAX_SUBGRAPH_RUNS)"
    )


class LimitPassed(Exception):
    """A reservation that would pass one of the tree's limits (its message says which)."""


_RESERVE_NODES_SQL = """
UPDATE executions_graphexecution AS root
   SET node_count = root.node_count + %(n)s
  FROM executions_graphexecution AS run
 WHERE run.id = %(run)s AND root.id = COALESCE(run.root_id, run.id)
   AND root.node_count + %(n)s <= root.node_limit
RETURNING root.id
"""


def reserve_node_executions(execution_id, n: int) -> str | None:
    """Count `n` new node executions of this run against its tree's limit, before they are
    inserted. None when they fit; else the message saying which limit they would pass (and
    nothing was counted)."""
    if n <= 0:
        return None
    with connection.cursor() as cursor:
        cursor.execute(_RESERVE_NODES_SQL, {"n": n, "run": execution_id})
        if cursor.fetchone() is not None:
            return None
    return node_limit_message(_root_of(execution_id).node_limit)


# New node executions inserted only if they fit the tree's limit, counted in the same
# statement (one round trip, and no row past the limit is ever written).
_INSERT_WITHIN_LIMIT_SQL = """
WITH reserved AS (
    UPDATE executions_graphexecution AS root
       SET node_count = root.node_count + %(n)s
      FROM executions_graphexecution AS run
     WHERE run.id = %(run)s AND root.id = COALESCE(run.root_id, run.id)
       AND root.node_count + %(n)s <= root.node_limit
    RETURNING root.id
)
INSERT INTO executions_nodeexecution
       (execution_id, node_id, block, status, input_data, output_data, error, attempts,
        cost, task_id, worker, propagated, join_id, created_at, queued_at, started_at,
        ended_at, reused_from)
SELECT %(run)s, r.node_id, r.block, r.status, r.input_data, '{}'::jsonb, NULL, 0, 0,
       r.task_id, '', false, NULL, %(now)s, r.queued_at, NULL, NULL, NULL
  FROM reserved,
       ROWS FROM (jsonb_to_recordset(%(rows)s::jsonb)
                  AS (node_id text, block text, status text, input_data jsonb, task_id text,
                      queued_at timestamptz)) WITH ORDINALITY AS r
 ORDER BY r.ordinality
RETURNING id
"""


def insert_within_limit(execution_id, rows: list[NodeExecution], now) -> str | None:
    """Insert these new node executions of the run (setting their ids) if they fit its
    tree's node limit; else insert none and answer the message naming the limit."""
    if not rows:
        return None
    payload = [
        {
            "node_id": r.node_id,
            "block": r.block,
            "status": r.status,
            "input_data": r.input_data,
            "task_id": r.task_id,
            "queued_at": r.queued_at.isoformat() if r.queued_at else None,
        }
        for r in rows
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT_WITHIN_LIMIT_SQL,
            {"n": len(rows), "run": execution_id, "rows": json.dumps(payload), "now": now},
        )
        ids = sorted(pk for (pk,) in cursor.fetchall())  # sequence order = the rows' order
    if not ids:
        return node_limit_message(_root_of(execution_id).node_limit)
    for row, pk in zip(rows, ids, strict=True):
        row.pk = row.id = pk
    return None


_RESERVE_SUBGRAPH_SQL = """
UPDATE executions_graphexecution AS root
   SET subgraph_count = root.subgraph_count + 1
  FROM executions_graphexecution AS run
 WHERE run.id = %(run)s AND root.id = COALESCE(run.root_id, run.id)
   AND root.subgraph_count < root.subgraph_limit
RETURNING root.id, root.node_limit, root.subgraph_limit
"""


def reserve_subgraph_run(parent_execution_id):
    """Count one more sub-graph run of the parent's tree; returns the tree's root id, or
    raises LimitPassed."""
    with connection.cursor() as cursor:
        cursor.execute(_RESERVE_SUBGRAPH_SQL, {"run": parent_execution_id})
        row = cursor.fetchone()
    if row is not None:
        return row[0]
    raise LimitPassed(subgraph_limit_message(_root_of(parent_execution_id).subgraph_limit))


def _root_of(execution_id) -> GraphExecution:
    run = GraphExecution.objects.only("root_id").get(id=execution_id)
    return GraphExecution.objects.only("node_limit", "subgraph_limit").get(
        id=run.root_id or execution_id
    )
