"""Publishing work to Celery: one task per node execution, a chord where fan-in starts.

Every message goes out after the transaction that decided it has committed (so a task never
arrives before the row it names), through the outbox (outbox.py), so that a broker outage
delays it by seconds instead of losing it.
"""

from __future__ import annotations

import logging
from dataclasses import astuple, dataclass

from celery import chord, current_app
from django.conf import settings

from blocks.registry import get_block_class
from common.tracing import continued

from . import outbox
from .budgets import node_time_limit
from .engine import Plan, group_for_fan_in
from .plans import plan_for_version
from .stopping import mark

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Queued:
    """A node execution that became ready and must be dispatched after commit."""

    id: int
    node_id: str
    block: str
    task_id: str


# Seconds past a node's time limit before its process is killed outright (the soft limit
# lets the block stop cleanly and the node record "timed out after N s").
HARD_LIMIT_GRACE = 30


def plan_groups(plan: Plan, queued: list[Queued]) -> list[list[Queued]]:
    """Node executions that feed a common downstream node go out together as one chord."""
    return group_for_fan_in(plan, [(q, q.node_id) for q in queued]) if queued else []


# The tasks' names are the contract with the workers (tasks.py declares them under these):
# publishing by name keeps this module below the tasks that call into the engine.
START_EXECUTION = "executions.start_execution"
RUN_NODE = "executions.run_node"
JOIN_NODES = "executions.join_nodes"
COMPLETE_FROM_CHILD = "executions.complete_from_child"
START_WAITING = "executions.start_waiting_runs"
LONG_SEND_TASKS = 200


# What a transaction decides to publish goes through the outbox (outbox.py): written with
# the transaction, sent after its commit, sent again by the relay if the broker refused it.
# Called inside the transaction that made the decision (or outside any, e.g. by the
# watchdog: then sent at once).


def start_execution(execution_id) -> None:
    outbox.record("start", {"run": str(execution_id)}, send_message)


def start_waiting(user_id: int) -> None:
    outbox.record("start_waiting", {"user": user_id}, send_message)


def send_groups(
    execution_id, version_id: int, groups: list[list[Queued]], *, outbox_row: int | None = None
) -> None:
    """`outbox_row`: the row this message was already written to (chain_hop.py writes it
    in its statement, with this body)."""
    if not any(groups):
        return  # a node that queued nothing (the last of its branch) sends nothing
    body = {
        "run": str(execution_id),
        "version": version_id,
        "groups": [[astuple(q) for q in group] for group in groups],
    }
    # Past a few hundred tasks the sending can outlast the relay's wait (see outbox.py).
    long_send = sum(len(group) for group in groups) > LONG_SEND_TASKS
    outbox.record("nodes", body, send_message, long_send=long_send, row_id=outbox_row)


def send_join(execution_id, version_id: int, member_ids: list[int]) -> None:
    body = {"run": str(execution_id), "version": version_id, "members": member_ids}
    outbox.record("join", body, send_message)


def take_over(execution_id, version_id: int, orphan: Queued) -> None:
    """Publish a node left RUNNING by a worker that vanished, for a task to take it over:
    under the task id stored on its row (`orphan.task_id`, new), so a cancel's revoke
    reaches it, and with the node's time limits like any node task."""
    body = {"run": str(execution_id), "version": version_id, "node": astuple(orphan)}
    outbox.record("take_over", body, send_message)


def child_ended(node_execution_id: int, child_execution_id) -> None:
    """A sub-graph run ended: the node waiting for it takes its outputs (or its error)."""
    body = {"node": node_execution_id, "child": str(child_execution_id)}
    outbox.record("child_ended", body, send_message)


def send_message(kind: str, body: dict) -> None:
    """Publish one outbox message to the broker (raises if the broker refuses it), in the
    trace it was decided in (outbox.record keeps it): a relay's re-send continues it too."""
    trace = body.get("trace")
    if not trace:
        return _send(kind, body, {})
    with continued(trace):  # Celery's instrumentation, if on here, publishes as its child
        return _send(kind, body, {"headers": {"traceparent": trace}})


def _send(kind: str, body: dict, options: dict) -> None:
    signature = current_app.signature
    if kind == "start":
        signature(START_EXECUTION, args=[body["run"]], **options).apply_async()
    elif kind == "start_waiting":
        signature(START_WAITING, args=[body["user"]], **options).apply_async()
    elif kind == "join":
        join = [body["run"], body["version"], body["members"]]
        signature(JOIN_NODES, args=join, **options).apply_async()
    elif kind == "child_ended":
        ended = [body["node"], body["child"]]
        signature(COMPLETE_FROM_CHILD, args=ended, **options).apply_async()
    elif kind == "take_over":
        plan = plan_for_version(body["version"])
        task = _node_task(plan, Queued(*body["node"]), body["run"], False)
        signature(RUN_NODE, kwargs={"take_over": True}, **task, **options).apply_async()
    elif kind == "nodes":
        plan = plan_for_version(body["version"])
        # One producer (and broker channel) for the whole message: a fan-out's thousands of
        # tasks went out 16% faster than each acquiring one from the pool.
        with current_app.producer_or_acquire() as producer:
            for group in body["groups"]:
                queued = [Queued(*q) for q in group]
                if len(queued) == 1:
                    task = _node_task(plan, queued[0], body["run"], False)
                    signature(RUN_NODE, **task, **options).apply_async(producer=producer)
                    continue
                # Chord members keep their results: the Redis backend counts them to fire
                # the join.
                header = [
                    signature(RUN_NODE, **_node_task(plan, q, body["run"], True), **options)
                    for q in queued
                ]
                join = [body["run"], body["version"], [q.id for q in queued]]
                chord(header)(signature(JOIN_NODES, args=join, immutable=True))
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
    app = current_app

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
