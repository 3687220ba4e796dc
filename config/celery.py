"""The Celery app: RabbitMQ carries every task, Redis keeps results and chord counters.

Delivery is at-least-once on purpose (acks_late + reject_on_worker_lost, prefetch 1): a task
whose worker dies is delivered again, and every task is written so that running it twice
does no harm (see executions/node_runs.py).
"""

import os

from celery import Celery, signals
from celery.schedules import crontab
from django.conf import settings
from kombu import Exchange, Queue

from common.tracing import flush as flush_traces
from common.tracing import setup_tracing

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("agentgraph")
app.config_from_object("django.conf:settings", namespace="CELERY")

NODE_QUEUE = settings.NODE_QUEUE
ENGINE_QUEUE = settings.ENGINE_QUEUE
BACKGROUND_QUEUE = settings.BACKGROUND_QUEUE

app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_track_started=False,
    task_ignore_result=True,
    result_expires=3600,
    # Worker task events let Flower show every node task as it runs, named by its shadow
    # ("node <block>:<node id>"). No task-sent events: they carry the plain task name and,
    # arriving after the worker's events, would rename the task in Flower; they would also
    # cost one more publish per node.
    worker_send_task_events=True,
    task_send_sent_event=False,
    broker_connection_retry_on_startup=True,
    task_default_queue=ENGINE_QUEUE,
    task_queues=tuple(
        Queue(name, Exchange(name), routing_key=name)
        for name in dict.fromkeys(
            [NODE_QUEUE, ENGINE_QUEUE, BACKGROUND_QUEUE, *settings.ENGINE_BLOCK_QUEUES.values()]
        )
    ),
    task_routes={
        "executions.run_node": {"queue": NODE_QUEUE, "routing_key": NODE_QUEUE},
        "executions.retention": {"queue": BACKGROUND_QUEUE, "routing_key": BACKGROUND_QUEUE},
        **{
            pattern: {"queue": BACKGROUND_QUEUE, "routing_key": BACKGROUND_QUEUE}
            for pattern in ("notifications.*", "schedules.*", "idempotency.*", "accounts.*")
        },
    },
    worker_hijack_root_logger=False,
)
# Celery's Django fixup closes every database connection before and after each task unless
# told to reuse them; reconnecting costs more than a whole node. Reuse them, and let Django
# drop only the connections that broke or passed CONN_MAX_AGE, before each task.
app.conf["CELERY_DB_REUSE_MAX"] = 1_000_000

# Beat (django-celery-beat's database scheduler picks these up): the watchdog re-drives
# stalled runs; retention deletes old finished runs (and expired API tokens).
app.conf.beat_schedule = {
    "executions-watchdog": {
        "task": "executions.watchdog",
        "schedule": float(settings.ENGINE_WATCHDOG_INTERVAL),
        "options": {"expires": settings.ENGINE_WATCHDOG_INTERVAL},
    },
    "notifications-redeliver": {
        "task": "notifications.redeliver",
        "schedule": 60.0,
        "options": {"expires": 60},
    },
    "executions-retention": {
        "task": "executions.retention",
        "schedule": crontab(hour=3, minute=17),
    },
    "schedules-retention": {
        "task": "schedules.retention",
        "schedule": crontab(hour=3, minute=37),
    },
    "idempotency-purge-expired": {
        "task": "idempotency.purge_expired",
        "schedule": crontab(hour=3, minute=57),
    },
    "files-retention": {
        "task": "files.retention",
        "schedule": crontab(hour=4, minute=7),
    },
    "accounts-purge-expired-tokens": {
        "task": "accounts.purge_expired_tokens",
        "schedule": crontab(hour=3, minute=47),
    },
}
app.autodiscover_tasks()


@signals.worker_init.connect
def _register_stop_command(**kwargs):
    """The `stop_nodes` remote control command (executions/stopping.py)."""
    import executions.stopping  # noqa: F401


_relay = None


@signals.worker_ready.connect
def _start_outbox_relay(**kwargs):
    """Each worker's main process sends what commits decided to publish and the broker
    refused (executions/outbox.py)."""
    global _relay
    # Here, not at the top: this module loads with Django's settings, before its apps.
    from executions.dispatch import relay_thread

    _relay = relay_thread()
    _relay.start()


@signals.worker_shutdown.connect
def _stop_outbox_relay(**kwargs):
    if _relay is not None:
        _relay.stop()


@signals.worker_process_init.connect
def _install_stop_handler(**kwargs):
    """Cancelling a run stops its running nodes where they run (executions/stopping.py)."""
    from executions.stopping import install  # after the apps are ready, like the relay

    install()


@signals.worker_process_init.connect
def _start_tracing(**kwargs):
    """Traces, if OTEL_* asks for them (common/tracing.py): in each pool process, whose
    span exporter thread must be its own (a thread does not survive the fork)."""
    setup_tracing("agentgraph-worker")


@signals.beat_init.connect
def _start_beat_tracing(**kwargs):
    setup_tracing("agentgraph-beat")  # a scheduled run's trace starts where beat sent it


@signals.worker_process_shutdown.connect
def _flush_traces(**kwargs):
    flush_traces()


@signals.task_prerun.connect
def _drop_broken_connections(**kwargs):
    """Close database connections that failed or outlived CONN_MAX_AGE before each task.
    Unlike close_old_connections(), this does not arm Django's health check, which would
    cost a `SELECT 1` round trip per task (a node's whole budget is a few of them); a
    connection that broke silently fails its task's first query, and the task is retried
    (DatabaseError autoretry) on a fresh one."""
    import time

    from django.db import connections

    for conn in connections.all(initialized_only=True):
        if conn.connection is None:
            continue
        if conn.errors_occurred or (
            conn.close_at is not None and time.monotonic() >= conn.close_at
        ):
            conn.close_if_unusable_or_obsolete()
