"""Queuing a run's starting nodes, and a re-run's start (reruns.py decides what it reuses
and runs): the reused executions copied, their outputs handed to the nodes that run, its
starting nodes among those queued."""

from __future__ import annotations

import dataclasses
import uuid

from django.db import transaction

from common import metrics

from . import events
from .dispatch import Queued
from .engine import Status, starting_input
from .finishing import execution_finish
from .limits import insert_within_limit
from .models import NodeExecution
from .plans import plan_for_version
from .propagation import Propagation, outputs_of_rows, propagate
from .settling import settle


def rerun_queue(
    execution_id, version_id: int, inputs: dict, now, rerun_of, run_nodes: list[str],
    first_event: dict | None = None,
) -> None:  # fmt: skip
    """A re-run just moved to RUNNING: the completed executions of the nodes it does not run
    are copied from the run it re-runs (reused: not run, not charged), their outputs go to
    the nodes it runs in the order they were first recorded (the same values, paired the
    same way), and its starting nodes among those it runs are queued."""
    announced = [first_event] if first_event is not None else []
    transaction.on_commit(metrics.EXECUTIONS_STARTED.inc)
    plan = plan_for_version(version_id)
    run = set(run_nodes)
    originals = list(
        NodeExecution.objects.filter(execution_id=rerun_of, status=Status.COMPLETED)
        .exclude(node_id__in=run)
        .filter(node_id__in=list(plan.nodes))
        .order_by("id")
        .values("id", "node_id", "block", "status", "input_data", "output_data")
    )
    copies = NodeExecution.objects.bulk_create(
        NodeExecution(
            execution_id=execution_id,
            node_id=r["node_id"],
            block=r["block"],
            status=Status.COMPLETED,
            input_data=r["input_data"],
            output_data=r["output_data"],
            propagated=True,
            reused_from=r["id"],
            queued_at=now,
            started_at=now,
            ended_at=now,
        )
        for r in originals
    )
    queued = starting_queued(execution_id, plan, [n for n in plan.starting_nodes if n in run],
                             inputs, now)  # fmt: skip
    if isinstance(queued, str):
        events.emit(execution_id, announced, announce=bool(announced))
        execution_finish(execution_id, Status.FAILED, error=queued)
        return
    # Reused outputs reach only the nodes that run (a reused node has its copy already).
    feeding = dataclasses.replace(
        plan,
        out_links={
            n: [k for k in links if k.sink_id in run] for n, links in plan.out_links.items()
        },
    )
    fed = propagate(execution_id, feeding, outputs_of_rows(originals))
    result = Propagation([*queued, *fed.queued], len(queued) + fed.created, fed.waiting,
                         fed.limit_passed)  # fmt: skip
    reused = [
        events.node_event(execution_id, c.pk, c.node_id, Status.COMPLETED, outputs=c.output_data)
        for c in copies
    ]
    events.emit(execution_id, [*announced, *reused, *result.node_events(execution_id)],
                announce=bool(announced))  # fmt: skip
    settle(execution_id, plan, version_id, done=0, result=result, unhandled=0)


def starting_queued(
    execution_id, plan, node_ids: list[str], inputs: dict, now
) -> list[Queued] | str:
    """These starting nodes of the run written QUEUED (counted on its tree's node limit and
    inserted at once): the executions to dispatch, or the limit's message (none written)."""
    task_ids = [str(uuid.uuid4()) for _ in node_ids]
    rows = [
        NodeExecution(
            execution_id=execution_id,
            node_id=node_id,
            block=plan.nodes[node_id].block,
            status=Status.QUEUED,
            task_id=task_id,
            queued_at=now,
            input_data=starting_input(plan.nodes[node_id], inputs),
        )
        for node_id, task_id in zip(node_ids, task_ids, strict=True)
    ]
    passed = insert_within_limit(execution_id, rows, now)
    if passed:
        return passed
    return [Queued(r.id, r.node_id, r.block, t) for r, t in zip(rows, task_ids, strict=True)]
