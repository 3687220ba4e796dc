"""A run's figures: nodes that ran, errors, cost (sub-graph runs' included), duration.

One statement (FIGURES_SQL) counts them, for a run's end (stored on it), for the records of
live runs, and inside the execution record's own statement (selectors._RECORD_SQL)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connection
from django.utils import timezone

from .models import GraphExecution

# {run}: the run's id, a parameter or a column of an outer query. The run's own node
# executions are counted; the cost is its whole tree's (sub-graph runs, however deep).
FIGURES_SQL = """
WITH RECURSIVE tree AS (
    SELECT {run} AS id
    UNION
    SELECT c.id FROM executions_graphexecution c
      JOIN executions_nodeexecution pn ON pn.id = c.parent_node_execution_id
      JOIN tree ON pn.execution_id = tree.id
)
SELECT json_build_object(
    'ran', coalesce(sum(per_run.ran), 0),
    'failed', coalesce(sum(per_run.failed), 0),
    'cost', coalesce(sum(per_run.cost), 0))
  FROM tree CROSS JOIN LATERAL (
    -- LATERAL: each run's node executions by index. Joined as a set, the planner guessed
    -- a few hundred runs in the tree and scanned the whole table (88 ms at 400,000 rows).
    SELECT count(*) FILTER (WHERE tree.id = {run}
                              AND n.status IN ('COMPLETED', 'FAILED', 'RUNNING')) AS ran,
           count(*) FILTER (WHERE tree.id = {run} AND n.status = 'FAILED') AS failed,
           sum(n.cost) AS cost
      FROM executions_nodeexecution n
     WHERE n.execution_id = tree.id
  ) AS per_run
"""

# The figures of a run that has only just been created or started.
NOTHING_RAN = {"ran": 0, "failed": 0, "cost": 0}


def node_figures(execution_id) -> dict[str, int]:
    """{"ran", "failed", "cost"} of the run, as they stand."""
    with connection.cursor() as cursor:
        cursor.execute(FIGURES_SQL.format(run="%(run)s::uuid"), {"run": str(execution_id)})
        (figures,) = cursor.fetchone()
    return figures


# The figures of many runs in one statement (a page of the runs list): FIGURES_SQL per run.
_MANY_FIGURES_SQL = (
    "SELECT run.id, ("
    + FIGURES_SQL.format(run="run.id")
    + ") FROM unnest(%(runs)s::uuid[]) AS run(id)"
)


def many_node_figures(execution_ids) -> dict[Any, dict[str, int]]:
    """node_figures() of each of these runs, by id, in one round trip."""
    if not execution_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(_MANY_FIGURES_SQL, {"runs": [str(pk) for pk in execution_ids]})
        return dict(cursor.fetchall())


def stats_of(
    figures: dict[str, int], started_at: datetime | None, ended_at: datetime | None
) -> dict[str, Any]:
    """The `stats` of an execution record: node_count (nodes that ran), node_error_count,
    cost, duration in seconds (so far, for a live run)."""
    end = ended_at or timezone.now()
    return {
        "node_count": figures["ran"],
        "node_error_count": figures["failed"],
        "cost": figures["cost"],
        "duration": round((end - started_at).total_seconds(), 3) if started_at else 0.0,
    }


def execution_stats(execution: GraphExecution) -> dict[str, Any]:
    return stats_of(node_figures(execution.pk), execution.started_at, execution.ended_at)
