"""Celery tasks: each loads by id and calls one service function.

Delivery is at-least-once (acks_late, reject_on_worker_lost); the services make a second
delivery harmless. A redelivered message (its first worker died) may take over a node left
RUNNING.
"""

from celery import shared_task
from django.db import DatabaseError

from . import services

# Database hiccups are retried with backoff; the retried task may take its node back.
_RETRY = {
    "autoretry_for": (DatabaseError,),
    "retry_backoff": 0.5,
    "retry_backoff_max": 30,
    "max_retries": 20,
}


@shared_task(name="executions.start_execution", **_RETRY)
def start_execution(execution_id: str) -> None:
    services.execution_start(execution_id)


@shared_task(name="executions.run_node", bind=True, **_RETRY)
def run_node(self, node_execution_id: int, execution_id: str, in_chord: bool = False) -> None:
    take_over = (
        bool((self.request.delivery_info or {}).get("redelivered")) or self.request.retries > 0
    )
    services.node_process(node_execution_id, take_over=take_over, in_chord=in_chord)


@shared_task(
    name="executions.join_nodes",
    bind=True,
    max_retries=None,
    **{k: v for k, v in _RETRY.items() if k != "max_retries"},
)
def join_nodes(self, execution_id: str, version_id: int, member_ids: list[int]) -> None:
    try:
        services.chord_join(execution_id, version_id, member_ids)
    except services.JoinNotReady as exc:
        # The chord counted a redelivered member twice and fired early: wait for the rest.
        raise self.retry(
            exc=exc, countdown=min(0.2 * 2 ** min(self.request.retries, 4), 3.0)
        ) from exc
