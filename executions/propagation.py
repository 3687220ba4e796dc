"""Carrying outputs along links into the node executions downstream.

Runs inside the transaction that records the source node's result. Decisions come from
engine.py; this module loads the waiting executions a decision needs and writes the result.
Work per output is bounded by the sink's waiting executions, never by the graph's size.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.utils import timezone

from .dispatch import Queued
from .engine import (
    LinkSpec,
    Pending,
    Plan,
    Status,
    deliver,
    fill_static,
    is_ready,
    node_input,
    route_outputs,
)
from .events import node_event
from .limits import insert_within_limit
from .models import NodeExecution, StaticInput
from .transitions import move


@dataclass
class Propagation:
    queued: list[Queued]
    created: int  # node executions created (ready or waiting)
    waiting: list[tuple[int, str]] = field(default_factory=list)  # new INCOMPLETE (id, node)
    # Set when new executions would have passed the run tree's limit: the message (those
    # executions were not written; limits.py).
    limit_passed: str | None = None

    def node_events(self, execution_id) -> list[dict]:
        """The status events of the node executions this propagation queued or created."""
        return [node_event(execution_id, q.id, q.node_id, Status.QUEUED) for q in self.queued] + [
            node_event(execution_id, pk, node_id, Status.INCOMPLETE) for pk, node_id in self.waiting
        ]


def propagate(
    execution_id, plan: Plan, sources: Iterable[tuple[str, list[tuple[str, Any]]]]
) -> Propagation:
    """Deliver the outputs of finished node executions, given as (node_id, [(pin, value)]),
    to the executions of their sink nodes. Must run inside a transaction."""
    per_sink: dict[str, list[tuple[LinkSpec, Any]]] = {}
    for node_id, outputs in sources:
        for link, value in route_outputs(plan, node_id, outputs):
            per_sink.setdefault(link.sink_id, []).append((link, value))
    result = Propagation([], 0)
    # Sorted, so that two transactions always take sink locks in the same order.
    for sink_id in sorted(per_sink):
        _deliver_to_sink(execution_id, plan, sink_id, per_sink[sink_id], result)
    return result


def _deliver_to_sink(
    execution_id,
    plan: Plan,
    sink_id: str,
    deliveries: list[tuple[LinkSpec, Any]],
    result: Propagation,
) -> None:
    linked = plan.linked_pins(sink_id)
    if len(linked) == 1:
        # One linked pin: every value completes a new execution at once. Nothing ever waits,
        # so there is nothing to lock, read or remember (a static value only fills the other
        # pins of later executions, and there are none).
        pending = [
            Pending(None, {link.sink_name: value}, changed=True) for link, value in deliveries
        ]
        _store(execution_id, plan, sink_id, linked, pending, result)
        return
    _lock_sink(execution_id, sink_id)
    pending = [
        Pending(pk, data)
        for pk, data in NodeExecution.objects.filter(
            execution_id=execution_id, node_id=sink_id, status=Status.INCOMPLETE
        )
        .order_by("id")
        .values_list("id", "input_data")
    ]
    static_values: dict[str, Any] = {}
    if plan.static_pins(sink_id):
        static_values = dict(
            StaticInput.objects.filter(execution_id=execution_id, node_id=sink_id).values_list(
                "pin", "value"
            )
        )
    new_static: dict[str, Any] = {}
    for link, value in deliveries:
        if link.is_static:
            static_values[link.sink_name] = new_static[link.sink_name] = value
        for changed in deliver(pending, link.sink_name, value, static=link.is_static):
            fill_static(changed, static_values)
    _store(execution_id, plan, sink_id, linked, pending, result)
    if new_static:
        StaticInput.objects.bulk_create(
            [
                StaticInput(execution_id=execution_id, node_id=sink_id, pin=pin, value=value)
                for pin, value in new_static.items()
            ],
            update_conflicts=True,
            unique_fields=["execution", "node_id", "pin"],
            update_fields=["value"],
        )


def _store(
    execution_id,
    plan: Plan,
    sink_id: str,
    linked: frozenset[str],
    pending: list[Pending],
    result: Propagation,
) -> None:
    node = plan.nodes[sink_id]
    now = timezone.now()
    new_rows: list[NodeExecution] = []
    new_ready: list[tuple[NodeExecution, str]] = []  # with their task ids
    for p in pending:
        if not p.changed:
            continue
        ready = is_ready(linked, p.inputs)
        if p.id is None:
            task_id = str(uuid.uuid4())
            row = NodeExecution(
                execution_id=execution_id,
                node_id=sink_id,
                block=node.block,
                status=Status.QUEUED if ready else Status.INCOMPLETE,
                input_data=node_input(node.input_default, p.inputs) if ready else p.inputs,
                task_id=task_id if ready else None,
                queued_at=now if ready else None,
            )
            new_rows.append(row)
            if ready:
                new_ready.append((row, task_id))
        elif ready:
            task_id = str(uuid.uuid4())
            moved = move(
                NodeExecution.objects.filter(id=p.id),
                Status.INCOMPLETE,
                Status.QUEUED,
                input_data=node_input(node.input_default, p.inputs),
                task_id=task_id,
                queued_at=now,
            )
            if moved:
                result.queued.append(Queued(p.id, sink_id, node.block, task_id))
        else:
            NodeExecution.objects.filter(id=p.id, status=Status.INCOMPLETE).update(
                input_data=p.inputs
            )
    if new_rows and result.limit_passed is None:
        result.limit_passed = insert_within_limit(execution_id, new_rows, now)
    if new_rows and result.limit_passed is None:
        result.created += len(new_rows)
        result.queued.extend(Queued(row.id, sink_id, node.block, tid) for row, tid in new_ready)
        result.waiting.extend(
            (row.id, sink_id) for row in new_rows if row.status == Status.INCOMPLETE
        )


def _lock_sink(execution_id, sink_id: str) -> None:
    """Serialise pairing for one sink node of one run until the transaction ends, so two
    workers never hand the same waiting execution the same pin or start it twice."""
    key = zlib.crc32(f"{execution_id}:{sink_id}".encode())
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_NAMESPACE, key - 2**31])


_LOCK_NAMESPACE = 7_301  # keeps our advisory locks apart from anyone else's in the database


def outputs_of_rows(rows) -> list[tuple[str, list[tuple[str, Any]]]]:
    """(node_id, [(pin, value)...]) of finished node execution rows, to propagate."""
    return [
        (r["node_id"], [(pin, v) for pin, values in r["output_data"].items() for v in values])
        for r in rows
        if r["status"] in (Status.COMPLETED, Status.FAILED)
    ]
