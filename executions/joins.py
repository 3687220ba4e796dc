"""Fan-in: the callback of a chord carries every member's outputs downstream at once."""

from __future__ import annotations

from django.db import transaction

from . import events
from .engine import PARKED, TERMINAL, Status
from .models import GraphExecution, NodeExecution
from .plans import plan_for_version
from .propagation import outputs_of_rows, propagate
from .settling import settle


class JoinNotReady(Exception):
    """Some chord members have not finished yet (the chord fired early); try again later."""


def chord_join(execution_id, version_id: int, member_ids: list[int]) -> None:
    """The callback of a fan-in chord: carries every member's outputs downstream, in member
    order, and queues what became ready. Claims members with compare-and-set, so a repeated
    join does nothing."""
    status = GraphExecution.objects.filter(id=execution_id).values_list("status", flat=True).first()
    if status is None or status in TERMINAL:
        return
    rows = {
        r["id"]: r
        for r in NodeExecution.objects.filter(id__in=member_ids, join_id__isnull=False).values(
            "id", "node_id", "status", "output_data"
        )
    }
    if any(r["status"] in (Status.QUEUED, Status.RUNNING) for r in rows.values()):
        raise JoinNotReady(execution_id)
    parked = [i for i, r in rows.items() if r["status"] in PARKED]
    plan = plan_for_version(version_id)
    with transaction.atomic():
        # Members parked in a wait (waits.py) leave the chord: each carries its own outputs
        # downstream once resumed. One woken meanwhile is running again: wait for it.
        left = NodeExecution.objects.filter(id__in=parked, status__in=list(PARKED)).update(
            join_id=None
        )
        if left < len(parked):
            raise JoinNotReady(execution_id)
        claimed = set(
            NodeExecution.objects.filter(id__in=member_ids, propagated=False, join_id__isnull=False)
            .select_for_update()
            .values_list("id", flat=True)
        )
        if not claimed and not left:
            return
        NodeExecution.objects.filter(id__in=claimed).update(propagated=True)
        members = [rows[i] for i in member_ids if i in claimed]
        result = propagate(execution_id, plan, outputs_of_rows(members))
        events.emit(execution_id, result.node_events(execution_id))
        unhandled = sum(
            1
            for r in members
            if r["status"] == Status.FAILED and not plan.handles_errors(r["node_id"])
        )
        # The join held one unit of the run's active count for itself, and its members
        # theirs: all are released here.
        settle(
            execution_id,
            plan,
            version_id,
            done=len(claimed) + 1,
            result=result,
            unhandled=unhandled,
        )
