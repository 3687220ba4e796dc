"""Celery tasks: each loads by id and calls one service function.

Delivery is at-least-once (acks_late, reject_on_worker_lost); the services make a second
delivery harmless. A redelivered or retried message may take over a node left RUNNING once
its lease shows the owner is gone.
"""

from django.conf import settings

from common.logs import log_context
from common.tasks import task

from . import dispatch, joins, node_runs, recovery, runs, subgraphs


@task(dispatch.START_EXECUTION)
def start_execution(execution_id: str) -> None:
    with log_context(execution_id):
        runs.execution_start(execution_id)


@task(dispatch.START_WAITING)
def start_waiting_runs(user_id: int) -> None:
    runs.start_waiting_runs(user_id)


@task(dispatch.RUN_NODE, bind=True, database_retries=None)  # may take its node back
def run_node(self, node_execution_id: int, execution_id: str, take_over: bool = False) -> None:
    # A redelivered or retried message, or the watchdog's, may take over a RUNNING node.
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    take_over = take_over or redelivered or self.request.retries > 0
    try:
        with log_context(execution_id, node_execution_id):
            node_runs.node_process(
                node_execution_id,
                take_over=take_over,
                worker=self.request.hostname or "",
                execution_id=execution_id,
                # Celery's instrumentation put it in the message's headers, if tracing is on.
                published_in=getattr(self.request, "traceparent", None) or "",
            )
    except node_runs.LeaseHeld as exc:
        # Its owner may be alive (the broker redelivered after a dropped connection): look
        # again once the lease could have lapsed.
        raise self.retry(exc=exc, countdown=settings.ENGINE_NODE_LEASE_SECONDS) from exc
    except node_runs.RetryNode as exc:
        raise self.retry(exc=exc, countdown=exc.delay) from exc


@task(dispatch.JOIN_NODES, bind=True, database_retries=None)
def join_nodes(self, execution_id: str, version_id: int, member_ids: list[int]) -> None:
    try:
        with log_context(execution_id):
            joins.chord_join(execution_id, version_id, member_ids)
    except joins.JoinNotReady as exc:
        # The chord fired early (a member counted twice after a redelivery, or still waiting
        # for a sub-graph): wait for the rest.
        delay = min(0.2 * 2 ** min(self.request.retries, 5), 5.0)
        raise self.retry(exc=exc, countdown=delay) from exc


@task(dispatch.COMPLETE_FROM_CHILD)
def complete_from_child(node_execution_id: int, child_execution_id: str) -> None:
    with log_context(child_execution_id):
        subgraphs.child_ended(node_execution_id, child_execution_id)


@task("executions.watchdog", database_retries=0)  # the next beat tick is the retry
def watchdog() -> None:
    recovery.watchdog()


@task("executions.retention")
def retention() -> None:
    recovery.retention()
