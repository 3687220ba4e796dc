"""Publishing work to Celery: one task per node execution, a chord where fan-in starts.

Called only after the transaction that queued the node executions has committed, so a task
never arrives before the row it names.
"""

from __future__ import annotations

import logging
from functools import wraps

from celery import chord
from django.conf import settings

from blocks.registry import get_block_class

from .engine import Plan, group_for_fan_in, node_time_limit
from .plans import plan_for_version
from .propagation import Queued

log = logging.getLogger(__name__)

# Seconds past a node's time limit before its process is killed outright (the soft limit
# lets the block stop cleanly and the node record "timed out after N s").
HARD_LIMIT_GRACE = 30


def _published_after_commit(fn):
    """Publishing runs in on_commit hooks: the rows are already committed. When the broker
    stays unreachable past kombu's own retries, the rows stay QUEUED (the watchdog finds
    them) and the failure is logged; it must not turn an accepted request into a 500 or fail
    the task that already finished its node."""

    @wraps(fn)
    def publish(*args):
        try:
            fn(*args)
        except Exception:
            log.exception("could not publish %s%r; its rows stay queued", fn.__name__, args[:1])

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
    plan = plan_for_version(version_id)
    for group in groups:
        if len(group) == 1:
            run_node.signature(**_node_task(plan, group[0], execution_id, False)).apply_async()
            continue
        # Chord members keep their results: the Redis backend counts them to fire the join.
        header = [run_node.signature(**_node_task(plan, q, execution_id, True)) for q in group]
        chord(header)(join_nodes.si(execution_id, version_id, [q.id for q in group]))


@_published_after_commit
def send_join(execution_id, version_id: int, member_ids: list[int]) -> None:
    from .tasks import join_nodes

    join_nodes.apply_async(args=[str(execution_id), version_id, member_ids])


@_published_after_commit
def revoke(
    task_ids: list[str], execution_id=None, node_execution_ids: list[int] | None = None
) -> None:
    """Stop these node tasks: queued ones are discarded, running ones stopped where they
    run (stopping.py: marked, then their processes signalled; nothing is killed). Workers
    forget revokes when they restart; the claim's check of the run's state does not."""
    if not task_ids:
        return
    from config.celery import app

    from .stopping import mark

    if execution_id is not None:
        mark(execution_id, node_execution_ids or [])
    app.control.revoke(task_ids)  # queued ones are discarded when they arrive
    app.control.broadcast("stop_nodes", arguments={"task_ids": task_ids})


def node_queue(block: str) -> str:
    """The queue of a block's node tasks: its own if ENGINE_BLOCK_QUEUES names one (slow I/O
    blocks on workers of their own), the node queue otherwise."""
    return settings.ENGINE_BLOCK_QUEUES.get(block, settings.NODE_QUEUE)


def _node_task(plan: Plan, q: Queued, execution_id: str, in_chord: bool) -> dict:
    """The node task of one node execution, under the task id stored on it, with the node's
    time limit."""
    node = plan.nodes[q.node_id]
    cls = get_block_class(q.block)
    default = cls.timeout if cls else settings.ENGINE_NODE_TIMEOUT_CAP
    limit = node_time_limit(default, node.timeout, settings.ENGINE_NODE_TIMEOUT_CAP)
    queue = node_queue(q.block)
    return {
        "args": [q.id, execution_id],
        "task_id": q.task_id,
        "queue": queue,
        "routing_key": queue,
        "shadow": f"node {q.block}:{q.node_id}",
        "ignore_result": not in_chord,
        "immutable": True,
        "soft_time_limit": limit,
        "time_limit": limit + HARD_LIMIT_GRACE,
    }
