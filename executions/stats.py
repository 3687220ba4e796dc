"""A run's figures: nodes that ran, errors, cost (sub-graph runs' included), duration."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, Sum
from django.utils import timezone

from .engine import Status
from .models import GraphExecution, NodeExecution


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
