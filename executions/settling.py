"""A run's counters, and what they decide: dispatch the work just queued, hold it (the run
is paused), cancel it (the run ended, or its tree passed its node limit), or end the run.

Every finished unit of work (a node, a join) and every newly queued one is booked on the
run's row by one statement in the transaction that finished or queued it; the statement's
result (a Counters row) is what the decision reads."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db import connection

from . import dispatch
from .dispatch import Queued
from .engine import Plan, Status, awaits_review, final_status
from .finishing import cancel_queued, execution_finish
from .models import NodeExecution
from .propagation import Propagation
from .waits import to_review

# An ended run has nothing active: its count stays 0 whatever still settles late.
_SETTLE_SQL = """
UPDATE executions_graphexecution
   SET active_count = CASE WHEN status IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN 0
                           ELSE active_count + %s END,
       unhandled_error_count = unhandled_error_count + %s, progressed_at = now()
 WHERE id = %s
RETURNING status, active_count, unhandled_error_count, parked_count, review_count
"""


def settle(
    execution_id, plan: Plan, version_id: int, *, done: int, result: Propagation, unhandled: int
) -> None:
    """Books `done` finished units and the newly queued executions on the run's counters, then
    decides: dispatch after commit, hold (paused), or end the run. Called last in the
    transaction, so the run's row stays locked only briefly."""
    groups = dispatch.plan_groups(plan, result.queued)
    chords = [g for g in groups if len(g) > 1]
    for members in chords:  # remembered, so that a lost join can be driven again
        NodeExecution.objects.filter(id__in=[q.id for q in members]).update(join_id=uuid.uuid4())
    added = len(result.queued) + len(chords)  # one unit per join
    counters = _counters_booked(added - done, unhandled, execution_id, result.limit_passed)
    settle_decide(execution_id, version_id, groups, result.queued, counters)


def _counters_booked(added: int, unhandled: int, execution_id, limit_passed) -> Counters:
    """Runs _SETTLE_SQL and reads its row."""
    with connection.cursor() as cursor:
        cursor.execute(_SETTLE_SQL, [added, unhandled, execution_id])
        status, active, unhandled_total, parked, reviews = cursor.fetchone()
    return Counters(status, active, unhandled_total, limit_passed, parked, reviews)


@dataclass(frozen=True)
class Counters:
    """The run's counters as the settling statement left them."""

    status: str
    active: int
    unhandled: int
    # Set when what was to be queued would have passed the tree's node limit (limits.py):
    # the message; those executions were not written.
    limit_passed: str | None = None
    # Of the active units, parked nodes and reviews among them (waits.py).
    parked: int = 0
    reviews: int = 0


def settle_decide(
    execution_id, version_id: int, groups: list[list[Queued]], queued: list[Queued],
    counters: Counters, *, outbox_row: int | None = None,
) -> None:  # fmt: skip
    """What the run's counters, as just updated, mean: dispatch the queued work after
    commit, hold it (paused), cancel it (the run ended or hit its tree's cap), or end the
    run. `outbox_row`: the dispatch's outbox row, already written (chain_hop.py) for a run
    that is RUNNING; unused otherwise (a task that finds its run not running does nothing)."""
    if counters.status == Status.PAUSED:
        return  # queued work waits for resume, which dispatches it
    if counters.status != Status.RUNNING:
        cancel_queued(queued, execution_id)
        return
    if counters.limit_passed:
        cancel_queued(queued, execution_id)
        execution_finish(execution_id, Status.FAILED, error=counters.limit_passed)
        return
    if counters.active <= 0:
        execution_finish(
            execution_id,
            final_status(counters.unhandled),
            error=_unhandled_message(execution_id) if counters.unhandled else None,
        )
        return
    dispatch.send_groups(execution_id, version_id, groups, outbox_row=outbox_row)
    if awaits_review(counters.active, counters.parked, counters.reviews):
        to_review(execution_id)


def _unhandled_message(execution_id) -> str:
    failed = (
        NodeExecution.objects.filter(execution_id=execution_id, status=Status.FAILED)
        .order_by("id")
        .values_list("node_id", "error")
        .first()
    )
    return f"node {failed[0]!r} failed: {failed[1]}" if failed else "a node failed"
