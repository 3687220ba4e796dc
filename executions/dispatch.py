"""Publishing work to Celery: one task per node execution, a chord where fan-in starts.

Called only after the transaction that queued the node executions has committed, so a task
never arrives before the row it names.
"""

from __future__ import annotations

import logging
from functools import wraps

from celery import chord

from .engine import Plan, group_for_fan_in
from .propagation import Queued

log = logging.getLogger(__name__)


def _published_after_commit(fn):
    """Publishing runs in on_commit hooks: the rows are already committed. When the broker
    stays unreachable past kombu's own retries, the rows stay QUEUED (where a recovery sweep
    can find them) and the failure is logged; it must not turn an accepted request into a
    500 or fail the task that already finished its node."""

    @wraps(fn)
    def publish(execution_id, *args):
        try:
            fn(execution_id, *args)
        except Exception:
            log.exception("could not publish work of execution %s; it stays queued", execution_id)

    return publish


def plan_groups(plan: Plan, queued: list[Queued]) -> list[list[Queued]]:
    """Node executions that feed a common downstream node go out together as one chord."""
    return group_for_fan_in(plan, [(q, q.node_id) for q in queued]) if queued else []


@_published_after_commit
def start_execution(execution_id) -> None:
    from .tasks import start_execution as task

    task.apply_async(args=[str(execution_id)])


@_published_after_commit
def send_groups(execution_id, version_id: int, groups: list[list[Queued]]) -> None:
    from .tasks import join_nodes, run_node

    execution_id = str(execution_id)
    for group in groups:
        if len(group) == 1:
            run_node.signature(**_node_task(group[0], execution_id, in_chord=False)).apply_async()
            continue
        # Chord members keep their results: the Redis backend counts them to fire the join.
        header = [run_node.signature(**_node_task(q, execution_id, in_chord=True)) for q in group]
        chord(header)(join_nodes.si(execution_id, version_id, [q.id for q in group]))


def _node_task(q: Queued, execution_id: str, *, in_chord: bool) -> dict:
    """The node task of one node execution, under the task id stored on it."""
    return {
        "args": [q.id, execution_id],
        "kwargs": {"in_chord": in_chord},
        "task_id": q.task_id,
        "shadow": _task_title(q),
        "ignore_result": not in_chord,
        "immutable": True,
    }


def _task_title(q: Queued) -> str:
    """What Flower and the worker log show for a node task: the block and the node."""
    return f"node {q.block}:{q.node_id}"
