"""A hop of a chain, and the last node of a branch, in one SQL statement; and the
bookkeeping every recorded result shares.

Most links of agent graphs are chains: a finished node sends one value to a sink with one
linked pin. That case needs no pairing, locks or static inputs, so recording the result,
queueing the next execution, writing its message to the outbox and booking the run's
counters is one data-modifying CTE (two database round trips per node instead of six). A
node that sends nothing on (the last of a chain, every item of a fan-out into a last node)
is recorded and booked in one statement too. Everything else goes through
propagation.propagate() and settling.settle(); the decisions after it are the same
(settling.settle_decide).
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from common import metrics
from common.tracing import current_traceparent
from credits.services import NodeCharge, charge_node_usage

from . import events
from .engine import Status, node_input, route_outputs
from .events import node_event
from .limits import node_limit_message
from .models import GraphExecution
from .propagation import Propagation, Queued
from .settling import Counters, settle, settle_decide

log = logging.getLogger(__name__)


def count_and_charge_result(
    node_id: str,
    block: str,
    error: str | None,
    payer: NodeCharge | None,
    seconds: float,
    output_data: dict[str, list[Any]],
) -> None:
    """What follows a node's result once it is recorded, whichever way: its count, a warning
    if it failed, and the run-time and output-size part of its price."""
    ended = Status.FAILED if error is not None else Status.COMPLETED
    transaction.on_commit(metrics.NODE_EXECUTIONS.labels(block, ended).inc)
    if error is not None:
        log.warning("node %s (%s) failed: %.500s", node_id, block, error)
    if payer is not None:
        charge_node_usage(payer, seconds=seconds, output_data=output_data)


# Both statements begin by recording the node's result, only if it was still RUNNING (the
# same compare-and-set as move()); what follows runs only if this moved a row.
_RECORDED = """moved AS (
    UPDATE executions_nodeexecution
       SET status = %(status)s, output_data = %(output)s::jsonb, error = %(error)s,
           ended_at = %(now)s, propagated = true
     WHERE id = %(ne_id)s AND status = 'RUNNING'
    RETURNING id
)"""


def _recorded_params(execution_id, ne_id: int, output_data, error, unhandled: int) -> dict:
    return {
        "status": Status.FAILED if error is not None else Status.COMPLETED,
        "output": json.dumps(output_data),
        "error": error,
        "now": timezone.now(),
        "ne_id": ne_id,
        "run_id": execution_id,
        "unhandled": unhandled,
    }


# One hop of a chain, in one statement: the finished node recorded, the run's counters booked
# (one more node execution, within the run's limit), the next node's execution queued (active:
# +1 queued -1 done) and, if the run is RUNNING, its message written to the outbox (the body
# dispatch.send_groups() builds). Each part runs only if the node was still RUNNING (the same
# compare-and-set as move()), and the next execution is inserted only if the count fit. Only
# for top-level runs, whose own row holds their tree's count (limits.py).
_SINGLE_HOP_SQL = (
    "WITH "
    + _RECORDED
    + """, counted AS (
    UPDATE executions_graphexecution
       SET node_count = node_count + 1,
           unhandled_error_count = unhandled_error_count + %(unhandled)s, progressed_at = now()
     WHERE id = %(run_id)s AND EXISTS (SELECT 1 FROM moved) AND node_count < node_limit
    RETURNING status, active_count, unhandled_error_count
), queued AS (
    INSERT INTO executions_nodeexecution
           (execution_id, node_id, block, status, input_data, output_data, error, attempts,
            cost, task_id, worker, propagated, join_id, created_at, queued_at, started_at,
            ended_at, reused_from)
    SELECT %(run_id)s, %(sink_id)s, %(sink_block)s, 'QUEUED', %(input)s::jsonb, '{}'::jsonb,
           NULL, 0, 0, %(task_id)s, '', false, NULL, %(now)s, %(now)s, NULL, NULL, NULL
      FROM counted
    RETURNING id
), outboxed AS (
    INSERT INTO executions_outboxmessage (kind, body)
    SELECT 'nodes', jsonb_build_object(
               'run', %(run_id)s::text, 'version', %(version_id)s::bigint,
               'groups', jsonb_build_array(jsonb_build_array(jsonb_build_array(
                   queued.id, %(sink_id)s::text, %(sink_block)s::text, %(task_id)s::text))))
           -- the trace it was decided in, with tracing on (outbox.record adds it the same)
           || CASE WHEN %(trace)s = '' THEN '{}'::jsonb
                   ELSE jsonb_build_object('trace', %(trace)s::text) END
      FROM queued, counted
     WHERE counted.status = 'RUNNING'
    RETURNING id
)
SELECT EXISTS (SELECT 1 FROM moved), queued.id, counted.status, counted.active_count,
       counted.unhandled_error_count, outboxed.id
  FROM (SELECT 1) AS one LEFT JOIN counted ON true LEFT JOIN queued ON true
       LEFT JOIN outboxed ON true
"""
)


@dataclass(frozen=True)
class HopRow:
    """What the chain-hop statement answers: whether the node was still RUNNING (so it was
    recorded), the queued execution's id (None when the run's limit would be passed), and
    the run's counters, and the outbox row of the queued execution's message (None unless
    the run is RUNNING)."""

    recorded: bool
    queued_id: int | None
    status: str | None
    active: int | None
    unhandled: int | None
    outbox_row: int | None


def single_hop(plan, node_id: str, outputs: list[tuple[str, Any]]):
    """The one (link, value) a finished node sends, when it simply queues one execution of
    its sink (the sink's one linked pin): the case of every link in a chain. None otherwise
    (propagate() handles the rest). A static link counts too: its value would only fill
    the other pins of the sink's later executions, and it has none (as in propagate())."""
    deliveries = list(route_outputs(plan, node_id, outputs))
    if len(deliveries) != 1:
        return None
    link, value = deliveries[0]
    if plan.linked_pins(link.sink_id) != {link.sink_name}:
        return None
    return link, value


def record_single_hop(
    execution_id, plan, version_id: int, ne_id: int, node_id: str, block: str,
    output_data: dict[str, list[Any]], error: str | None, hop, payer, lease, seconds: float,
) -> bool:  # fmt: skip
    """recording.record_result for a chain hop, in one statement instead of four. False if
    the node was no longer RUNNING (nothing changed)."""
    link, value = hop
    sink = plan.nodes[link.sink_id]
    task_id = str(uuid.uuid4())
    ended = Status.FAILED if error is not None else Status.COMPLETED
    # Booked by the statement when the hop fits, else by settle() below.
    unhandled = int(error is not None and not plan.handles_errors(node_id))
    with connection.cursor() as cursor:
        cursor.execute(
            _SINGLE_HOP_SQL,
            {
                **_recorded_params(execution_id, ne_id, output_data, error, unhandled),
                "version_id": version_id,
                "sink_id": sink.id,
                "sink_block": sink.block,
                "input": json.dumps(node_input(sink.input_default, {link.sink_name: value})),
                "task_id": task_id,
                "trace": current_traceparent(),
            },
        )
        hop_row = HopRow(*cursor.fetchone())
    if not hop_row.recorded:
        return False
    count_and_charge_result(node_id, block, error, payer, seconds, output_data)
    done = node_event(execution_id, ne_id, node_id, ended, outputs=output_data, error=error)
    drop = lease.dropped_with_event() if lease is not None else None
    if hop_row.queued_id is None:  # the run's limit: nothing was queued, the run fails
        events.emit(execution_id, [done], lease=drop)
        passed = Propagation([], 0, limit_passed=node_limit_message(plan_limit(execution_id)))
        settle(execution_id, plan, version_id, done=1, result=passed, unhandled=unhandled)
        return True
    queued = [Queued(hop_row.queued_id, sink.id, sink.block, task_id)]
    events.emit(execution_id, [done, *Propagation(queued, 1).node_events(execution_id)], lease=drop)
    counters = Counters(hop_row.status, hop_row.active, hop_row.unhandled)  # type: ignore[arg-type]
    settle_decide(
        execution_id, version_id, [queued], queued, counters, outbox_row=hop_row.outbox_row
    )
    return True


# The last node of a branch: recorded and booked on its own run's counters (active: -1 done;
# 0 once the run ended, as settling._SETTLE_SQL) in one statement, the counters only if the
# node was still RUNNING. Any run, top-level or not: no node execution is created.
_LAST_NODE_SQL = (
    "WITH "
    + _RECORDED
    + """, counted AS (
    UPDATE executions_graphexecution
       SET active_count = CASE WHEN status IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN 0
                               ELSE active_count - 1 END,
           unhandled_error_count = unhandled_error_count + %(unhandled)s, progressed_at = now()
     WHERE id = %(run_id)s AND EXISTS (SELECT 1 FROM moved)
    RETURNING status, active_count, unhandled_error_count, parked_count, review_count
)
SELECT EXISTS (SELECT 1 FROM moved), counted.status, counted.active_count,
       counted.unhandled_error_count, counted.parked_count, counted.review_count
  FROM (SELECT 1) AS one LEFT JOIN counted ON true
"""
)


@dataclass(frozen=True)
class LastNodeRow:
    """What the last-node statement answers: whether the node was still RUNNING (so it was
    recorded and booked), and the run's counters then."""

    recorded: bool
    status: str | None
    active: int | None
    unhandled: int | None
    parked: int | None
    reviews: int | None


def sends_nothing(plan, node_id: str, outputs: list[tuple[str, Any]]) -> bool:
    """Whether a finished node's outputs reach no link: it is the last of its branch."""
    return next(iter(route_outputs(plan, node_id, outputs)), None) is None


def record_last_node(
    execution_id, plan, version_id: int, ne_id: int, node_id: str, block: str,
    output_data: dict[str, list[Any]], error: str | None, payer, lease, seconds: float,
) -> bool:  # fmt: skip
    """recording.record_result for a node that sends nothing on, in one statement instead of
    two (and no outbox message). False if the node was no longer RUNNING."""
    ended = Status.FAILED if error is not None else Status.COMPLETED
    unhandled = int(error is not None and not plan.handles_errors(node_id))
    with connection.cursor() as cursor:
        cursor.execute(
            _LAST_NODE_SQL, _recorded_params(execution_id, ne_id, output_data, error, unhandled)
        )
        row = LastNodeRow(*cursor.fetchone())
    if not row.recorded:
        return False
    count_and_charge_result(node_id, block, error, payer, seconds, output_data)
    done = node_event(execution_id, ne_id, node_id, ended, outputs=output_data, error=error)
    events.emit(execution_id, [done], lease=lease.dropped_with_event() if lease else None)
    counters = Counters(  # recorded: every column is set
        row.status or "", row.active or 0, row.unhandled or 0,
        parked=row.parked or 0, reviews=row.reviews or 0,
    )  # fmt: skip
    settle_decide(execution_id, version_id, [], [], counters)
    return True


def plan_limit(execution_id) -> int:
    return (
        GraphExecution.objects.filter(id=execution_id).values_list("node_limit", flat=True).first()
        or 0
    )
