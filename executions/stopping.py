"""Stopping a running node, and nothing else.

Celery's `revoke(terminate=True)` signals the pool process by the task id it *was* running:
if that process has just moved on (Celery's known race), another node, maybe another
user's, is killed and its message redelivered, repeating its side effects. Here a cancel
marks the node executions it stops (a Redis key each), then broadcasts `stop_nodes`: each
worker sends SIGUSR2 to the pool processes running those task ids. The signal only wakes
the process up: its handler stops the block only if the node execution that process runs
*now* is marked. A signal that reaches the wrong process changes nothing, and a process is
never killed: the node's task ends normally. (Not Celery's terminate: it flags the process
as terminated on purpose, and a process that lives on and dies later for real would have
its job dropped instead of redelivered.)
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Iterator

from celery.worker.control import control_command
from django.conf import settings

from common import redis_clients

log = logging.getLogger(__name__)

STOP_SIGNAL = "SIGUSR2"
# Keyed by the run too: node execution ids start again in a new database (tests, a restore).
_KEY = "stop-node:{}:{}"
_MARK_SECONDS = 3600

# The node execution this process's task works on (pool processes run one task at a time),
# whether its block is running, and whether a stop for it came before the block started.
_current: int | None = None
_current_run = ""
_in_block = False
_stop_before_block = False


class NodeStopped(BaseException):
    """Raised in a running block when its node was cancelled. A BaseException, so that a
    block's own `except Exception` cannot swallow it."""


@contextlib.contextmanager
def working_on(execution_id, node_execution_id: int) -> Iterator[None]:
    """Around a node task: stop signals from now on are about this node execution."""
    global _current, _current_run, _stop_before_block
    _current, _current_run, _stop_before_block = node_execution_id, str(execution_id), False
    try:
        yield
    finally:
        _current = None


@contextlib.contextmanager
def stoppable() -> Iterator[None]:
    """Around the block: a stop raises NodeStopped in it (or at once, if it came between
    the claim and here)."""
    global _in_block
    if _stop_before_block:
        raise NodeStopped(_current)
    _in_block = True
    try:
        yield
    finally:
        _in_block = False


def mark(execution_id, node_execution_ids: list[int]) -> None:
    """Mark node executions of a run to stop (before their processes are signalled)."""
    if not node_execution_ids:
        return
    client = redis_clients.client(settings.REDIS_URL, socket_timeout=5)
    try:
        with client.pipeline(transaction=False) as pipe:
            for ne_id in node_execution_ids:
                pipe.set(_KEY.format(execution_id, ne_id), 1, ex=_MARK_SECONDS)
            pipe.execute()
    finally:
        client.close()


def is_marked(execution_id, node_execution_id: int) -> bool:
    # A connection of its own: the signal may have interrupted this process's own client in
    # the middle of a command.
    client = redis_clients.client(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        return bool(client.exists(_KEY.format(execution_id, node_execution_id)))
    finally:
        client.close()


def _on_stop_signal(signum, frame) -> None:
    global _stop_before_block
    current = _current
    if current is None:
        return
    try:
        marked = is_marked(_current_run, current)
    except Exception:  # Redis away: keep running; the claim's checks still hold
        log.warning("could not check whether node execution %s was stopped", current)
        return
    if not marked:
        log.info("stop signal for another task ignored (working on node execution %s)", current)
    elif _in_block:
        raise NodeStopped(current)
    else:
        _stop_before_block = True


@control_command(
    args=[("task_ids", list)],
    signature="<task_id> [task_id [...]]",
)
def stop_nodes(state, task_ids):
    """Remote control, in each worker's main process: signal the pool processes running
    these tasks (their handler decides, stopping.py)."""
    from celery.worker import state as worker_state

    wanted = set(task_ids)
    signalled = 0
    for request in list(worker_state.active_requests):
        if request.id in wanted and request.worker_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(request.worker_pid, getattr(signal, STOP_SIGNAL))
                signalled += 1
    return {"ok": f"signalled {signalled}"}


def install() -> None:
    """In each pool process (worker_process_init)."""
    signal.signal(getattr(signal, STOP_SIGNAL), _on_stop_signal)
