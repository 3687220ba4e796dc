"""What the console's pages show, read from the apps' own selectors and models (the console
writes nothing of its own: actions go through the API or the apps' services)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from common.tracing import trace_id_of
from credits.models import CreditTransaction
from executions.engine import Status
from executions.models import GraphExecution
from executions.selectors import execution_records, executions_of
from graphs.models import Graph
from triggers.models import Delivery

RUNS_PER_PAGE = 25
TRIGGERS = ("manual", "schedule", "webhook", "re-run", "replay")


def runs_listing(*, user, params) -> dict[str, Any]:
    """A page of the user's runs (top-level, newest first) with the filters in `params`:
    status, graph, trigger, q (a run id, or part of a graph's name), page."""
    runs = executions_of(user).filter(depth=0).select_related("graph", "graph_version")
    runs = runs.annotate(from_webhook=Exists(Delivery.objects.filter(execution_id=OuterRef("pk"))))
    status, graph, trigger = (
        params.get("status", ""),
        params.get("graph", ""),
        params.get("trigger", ""),
    )
    query = params.get("q", "").strip()
    if status in Status.__members__:
        runs = runs.filter(status=status)
    if _is_uuid(graph):
        runs = runs.filter(graph_id=graph)
    runs = _by_trigger(runs, trigger)
    if query:
        runs = runs.filter(Q(id=query) if _is_uuid(query) else Q(graph__name__icontains=query))
    page = Paginator(runs, RUNS_PER_PAGE).get_page(params.get("page"))
    records = execution_records(list(page.object_list))
    rows = [
        {**record, "graph_name": run.graph.name, "trigger": trigger_of(run), "run": run}
        for run, record in zip(page.object_list, records, strict=True)
    ]
    return {
        "rows": rows, "page": page, "statuses": list(Status.__members__),
        "triggers": TRIGGERS, "graphs": Graph.objects.filter(owner=user).order_by("name"),
        "filters": {"status": status, "graph": graph, "trigger": trigger, "q": query},
    }  # fmt: skip


def trigger_of(run: GraphExecution) -> str:
    if run.rerun_of_id:
        return "re-run"
    if run.replay_batch_id:
        return "replay"
    if run.schedule_id:
        return "schedule"
    if getattr(run, "from_webhook", False):
        return "webhook"
    return "manual"


def _by_trigger(runs, trigger: str):
    if trigger == "re-run":
        return runs.exclude(rerun_of=None)
    if trigger == "replay":
        return runs.exclude(replay_batch=None)
    if trigger == "schedule":
        return runs.exclude(schedule=None)
    if trigger == "webhook":
        return runs.filter(from_webhook=True)
    if trigger == "manual":
        return runs.filter(rerun_of=None, replay_batch=None, schedule=None, from_webhook=False)
    return runs


def spend_charts(*, user, days: int = 30) -> dict[str, Any]:
    """Credits spent (usage net of refunds) per day over the last `days`, and per graph."""
    since = timezone.now() - timedelta(days=days)
    spending = CreditTransaction.objects.filter(
        user=user, created_at__gte=since,
        type__in=(CreditTransaction.Type.USAGE, CreditTransaction.Type.REFUND),
    )  # fmt: skip
    per_day = {
        row["day"]: -row["net"]
        for row in spending.annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(net=Sum("amount"))
    }
    today = timezone.localdate()
    day_list = [today - timedelta(days=n) for n in range(days - 1, -1, -1)]
    by_run: dict[Any, int] = dict(
        spending.exclude(execution_id=None)
        .values("execution_id")
        .annotate(net=Sum("amount"))
        .values_list("execution_id", "net")
    )
    graph_of = dict(
        GraphExecution.objects.filter(pk__in=list(by_run)).values_list("pk", "graph__name")
    )
    per_graph: dict[str, int] = {}
    for run_id, net in by_run.items():
        name = graph_of.get(run_id, "(deleted runs)")
        per_graph[name] = per_graph.get(name, 0) - net
    ranked = sorted(per_graph.items(), key=lambda item: -item[1])[:10]
    return {
        "days": [d.isoformat() for d in day_list],
        "per_day": [per_day.get(d, 0) for d in day_list],
        "graphs": [name for name, _ in ranked],
        "per_graph": [spent for _, spent in ranked],
    }


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except (ValueError, TypeError):
        return False
    return True


def trace_link(traceparent: str) -> dict[str, str]:
    """A run's trace id, and its page in the operator's tracing tool if TRACES_URL names one
    ({} when the run was not traced)."""
    trace_id = trace_id_of(traceparent)
    if not trace_id:
        return {}
    template = settings.TRACES_URL
    return {"id": trace_id, "url": template.replace("{trace_id}", trace_id) if template else ""}
