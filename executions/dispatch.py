"""Publishing work to Celery: one task per node execution, a chord where fan-in starts.

Every message goes out after the transaction that decided it has committed (so a task never
arrives before the row it names), through the outbox (outbox.py), so that a broker outage
delays it by seconds instead of losing it.
"""

from __future__ import annotations

import logging
from dataclasses import astuple

from celery import chord
from django.conf import settings

from blocks.registry import get_block_class

from . import outbox
from .engine import Plan, group_for_fan_in, node_time_limit
from .plans import plan_for_version
from .propagation import Queued

log = logging.getLogger(__name__)

# Seconds past a node's time limit before its process is killed outright (the soft limit
# lets the block stop cleanly and the node record "timed out after N s").
HARD_LIMIT_GRACE = 30


def plan_groups(plan: Plan, queued: list[Queued]) -> list[list[Queued]]:
    """Node executions that feed a common downstream node go out together as one chord."""
    return group_for_fan_in(plan, [(q, q.node_id) for q in queued]) if queued else []


# What a transaction decides to publish goes through the outbox (outbox.py): written with
# the transaction, sent after its commit, sent again by the relay if the broker refused it.
# Called inside the transaction that made the decision (or outside any, e.g. by the
# watchdog: then sent at once).


def start_execution(execution_id) -> None:
    outbox.record("start", {"run": str(execution_id)}, send_message)


def send_groups(execution_id, version_id: int, groups: list[list[Queued]]) -> None:
    body = {
        "run": str(execution_id),
        "version": version_id,
        "groups": [[astuple(q) for q in group] for group in groups],
    }
    outbox.record("nodes", body, send_message)


def send_join(execution_id, version_id: int, member_ids: list[int]) -> None:
    body = {"run": str(execution_id), "version": version_id, "members": member_ids}
    outbox.record("join", body, send_message)


def send_message(kind: str, body: dict) -> None:
    """Publish one outbox message to the broker (raises if the broker refuses it)."""
    from .tasks import join_nodes, run_node, start_execution

    if kind == "start":
        start_execution.apply_async(args=[body["run"]])
    elif kind == "join":
        join_nodes.apply_async(args=[body["run"], body["version"], body["members"]])
    elif kind == "nodes":
        plan = plan_for_version(body["version"])
        for group in body["groups"]:
            queued = [Queued(*q) for q in group]
            if len(queued) == 1:
                run_node.signature(**_node_task(plan, queued[0], body["run"], False)).apply_async()
                continue
            # Chord members keep their results: the Redis backend counts them to fire the join.
            header = [run_node.signature(**_node_task(plan, q, body["run"], True)) for q in queued]
            chord(header)(join_nodes.si(body["run"], body["version"], [q.id for q in queued]))
    else:
        raise ValueError(f"unknown outbox message kind {kind!r}")


def relay_outbox() -> int:
    """Send what commits decided to publish and the broker has not taken yet."""
    return outbox.relay(send_message)


def relay_thread() -> outbox.RelayThread:
    return outbox.RelayThread(send_message)


def revoke(
    task_ids: list[str], execution_id=None, node_execution_ids: list[int] | None = None
) -> None:
    """Stop these node tasks: queued ones are discarded, running ones stopped where they
    run (stopping.py: marked, then their processes signalled; nothing is killed). Workers
    forget revokes when they restart; the claim's check of the run's state does not.

    Called after commit and never raises. Not an outbox message: a revoke the broker
    refuses only lets a running node finish its step, whose result the cancelled run's
    rows no longer accept, and a queued task finds its row CANCELLED when it arrives."""
    if not task_ids:
        return
    from config.celery import app

    from .stopping import mark

    try:
        if execution_id is not None:
            mark(execution_id, node_execution_ids or [])
        app.control.revoke(task_ids)  # queued ones are discarded when they arrive
        app.control.broadcast("stop_nodes", arguments={"task_ids": task_ids})
    except Exception:
        log.warning("could not revoke %d node task(s) of run %s", len(task_ids), execution_id)


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
