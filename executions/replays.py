"""Replaying failures in bulk: every run of a graph that ended a given way (FAILED by
default) within a window is run again on a chosen version, from its failed nodes (a re-run
reusing everything else) or from the start, as one batch with its own record. The runs
start under the per-user cap like any (those past it wait their turn), the same request
twice makes one batch, and cancelling the batch cancels its unfinished runs."""

from __future__ import annotations

import contextlib
import hashlib
import json
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count

from credits.services import InsufficientCredits
from graphs.models import Graph
from graphs.validation import GraphInvalid

from .control import ConflictingState, execution_cancel
from .engine import TERMINAL, Status
from .limits import LimitPassed
from .models import GraphExecution, ReplayBatch
from .reruns import run_again, run_again_preview

# The most runs one batch replays (the oldest first).
MOST_RUNS = 500


def replay_matches(*, graph: Graph, status: str, since: datetime | None, until: datetime | None):
    """The graph's top-level runs a replay would take, oldest first."""
    runs = GraphExecution.objects.filter(graph=graph, depth=0, status=status, rerun_of=None)
    if since is not None:
        runs = runs.filter(created_at__gte=since)
    if until is not None:
        runs = runs.filter(created_at__lt=until)
    return runs.order_by("created_at")[:MOST_RUNS]


def replay_preview(*, graph: Graph, request: dict[str, Any]) -> dict[str, Any]:
    """The batch's totals, creating nothing: how many runs, the nodes reused and run in all,
    the sensitive ones, and the least and most it costs."""
    runs = list(replay_matches(graph=graph, **_window(request)))
    reused = run = min_cost = max_cost = 0
    sensitive: set[str] = set()
    for match in runs:
        preview = run_again_preview(
            execution=match, from_stopped=_from_stopped(request), version=request.get("version")
        )
        reused += len(preview["reused"])
        run += len(preview["run"])
        min_cost += preview["min_cost"]
        max_cost += preview["max_cost"]
        sensitive |= set(preview["sensitive"])
    return {"runs": len(runs), "reused": reused, "run": run, "sensitive": sorted(sensitive),
            "min_cost": min_cost, "max_cost": max_cost}  # fmt: skip


def replay_create(*, user, graph: Graph, request: dict[str, Any]) -> tuple[ReplayBatch, bool]:
    """The batch, and whether this call made it (False: the same request made it before).
    Each matching run is run again now; one that cannot start (credits, limits, its
    inputs on the new version) is counted as not started, with why."""
    key = _request_key(graph, request)
    try:
        with transaction.atomic():
            batch = ReplayBatch.objects.create(
                user=user, graph=graph, request_key=key,
                request=json.loads(json.dumps(request, default=str)),  # times as ISO text
            )  # fmt: skip
    except IntegrityError:
        return ReplayBatch.objects.get(user=user, request_key=key), False
    problems: dict[str, str] = {}
    for run in replay_matches(graph=graph, **_window(request)):
        try:
            new = run_again(
                user=user, execution=run, from_stopped=_from_stopped(request),
                version=request.get("version"),
            )  # fmt: skip
        except (GraphInvalid, InsufficientCredits, LimitPassed, ConflictingState) as exc:
            problems[str(run.pk)] = str(exc)[:500]
            continue
        GraphExecution.objects.filter(pk=new.pk).update(replay_batch=batch)
    ReplayBatch.objects.filter(pk=batch.pk).update(not_started=problems)
    batch.refresh_from_db()
    return batch, True


def replay_cancel(batch: ReplayBatch) -> None:
    """Cancels the batch's runs that have not ended, and the batch."""
    for run_id in batch.runs.exclude(status__in=TERMINAL).values_list("pk", flat=True):
        with contextlib.suppress(ConflictingState):  # it ended meanwhile
            execution_cancel(run_id, reason="its replay batch was cancelled")
    ReplayBatch.objects.filter(pk=batch.pk).update(cancelled=True)


def replay_record(batch: ReplayBatch) -> dict[str, Any]:
    counts = dict(
        batch.runs.values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    return {
        "id": batch.pk,
        "graph_id": batch.graph_id,
        "request": batch.request,
        "cancelled": batch.cancelled,
        "counts": {**counts, "not_started": len(batch.not_started)},
        "runs": [str(pk) for pk in batch.runs.order_by("created_at").values_list("pk", flat=True)],
        "not_started": batch.not_started,
        "done": not batch.runs.exclude(status__in=TERMINAL).exists(),
        "created_at": batch.created_at,
    }


def _from_stopped(request: dict[str, Any]) -> bool:
    return request.get("from", "failed_nodes") == "failed_nodes"


def _window(request: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": request.get("status", Status.FAILED),
        "since": request.get("since"),
        "until": request.get("until"),
    }


def _request_key(graph: Graph, request: dict[str, Any]) -> str:
    body = json.dumps([str(graph.pk), request], sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()
