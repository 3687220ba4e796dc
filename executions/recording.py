"""Recording a node's result: RUNNING -> COMPLETED/FAILED with its outputs, then (unless a
chord's join does it) its outputs carried downstream and the run's counters settled, all in
one transaction. A single linked hop takes the one-statement path (chain_hop.py)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from blocks.base import ERROR_PIN
from common import metrics
from common.json_values import clean_text
from credits.services import NodeCharge

from . import events
from .block_runs import Outcome
from .chain_hop import (
    count_and_charge_result,
    record_last_node,
    record_single_hop,
    sends_nothing,
    single_hop,
)
from .claims import ClaimedNode
from .engine import Status
from .events import node_event
from .finishing import execution_finish
from .leases import NodeLease
from .models import NodeExecution
from .plans import plan_for_version
from .propagation import propagate
from .settling import settle
from .transitions import move


def node_complete(claimed: ClaimedNode, outcome: Outcome, lease: NodeLease | None = None) -> None:
    """RUNNING -> COMPLETED/FAILED with its outputs, and the time/size part of its price
    settled. A node dispatched alone then carries its outputs downstream in the same
    transaction; a chord member leaves that to the join."""
    record_result(
        claimed.execution_id,
        claimed.graph_version_id,
        claimed.id,
        claimed.node_id,
        claimed.block,
        claimed.in_chord,
        outcome,
        payer=None if claimed.dry_run else claimed.payer,  # a dry run pays nothing
        lease=lease,
        top_level=claimed.depth == 0,
    )


def record_result(
    execution_id,
    version_id: int,
    ne_id: int,
    node_id: str,
    block: str,
    in_chord: bool,
    outcome: Outcome,
    *,
    payer: NodeCharge | None,
    lease: NodeLease | None = None,
    top_level: bool = True,
) -> None:
    outputs, error = outcome.outputs, outcome.error
    if error is not None:
        error = clean_text(error)
        outputs = [*outputs, (ERROR_PIN, error)]
    output_data: dict[str, list[Any]] = {}
    for pin, value in outputs:
        output_data.setdefault(pin, []).append(value)
    ended = Status.FAILED if error is not None else Status.COMPLETED
    if not in_chord:  # one statement for a chain's hop or a branch's last node
        plan = plan_for_version(version_id)
        # A hop creates a node execution, counted on the run tree's root: top-level runs
        # hold their own count (limits.py).
        hop = single_hop(plan, node_id, outputs) if top_level else None
        if hop is not None:
            with transaction.atomic():
                record_single_hop(
                    execution_id, plan, version_id, ne_id, node_id, block, output_data, error,
                    hop, payer, lease, outcome.seconds,
                )  # fmt: skip
            return
        if sends_nothing(plan, node_id, outputs):
            with transaction.atomic():
                record_last_node(
                    execution_id, plan, version_id, ne_id, node_id, block, output_data, error,
                    payer, lease, outcome.seconds,
                )  # fmt: skip
            return
    with transaction.atomic():
        moved = move(
            NodeExecution.objects.filter(id=ne_id),
            Status.RUNNING,
            ended,
            output_data=output_data,
            error=error,
            ended_at=timezone.now(),
            propagated=not in_chord,
        )
        if not moved:
            return
        count_and_charge_result(node_id, block, error, payer, outcome.seconds, output_data)
        done = node_event(execution_id, ne_id, node_id, ended, outputs=output_data, error=error)
        drop = lease.dropped_with_event() if lease is not None else None
        if in_chord:
            events.emit(execution_id, [done], lease=drop)
            return
        plan = plan_for_version(version_id)
        result = propagate(execution_id, plan, [(node_id, outputs)])
        events.emit(execution_id, [done, *result.node_events(execution_id)], lease=drop)
        unhandled = int(error is not None and not plan.handles_errors(node_id))
        settle(execution_id, plan, version_id, done=1, result=result, unhandled=unhandled)


def node_fail_unpaid(claimed: ClaimedNode, reason: str) -> None:
    """A node its user cannot pay for (credits, worker time) fails without running, and so
    does its run: nothing more starts (nodes already running finish; queued ones are
    cancelled)."""
    with transaction.atomic():
        moved = move(
            NodeExecution.objects.filter(id=claimed.id),
            Status.RUNNING,
            Status.FAILED,
            error=reason,
            output_data={ERROR_PIN: [reason]},
            ended_at=timezone.now(),
        )
        if moved:
            transaction.on_commit(metrics.NODE_EXECUTIONS.labels(claimed.block, Status.FAILED).inc)
            failed = node_event(
                claimed.execution_id, claimed.id, claimed.node_id, Status.FAILED, error=reason
            )
            events.emit(claimed.execution_id, [failed])
            execution_finish(
                claimed.execution_id,
                Status.FAILED,
                error=f"node {claimed.node_id!r} could not run: {reason}",
            )
