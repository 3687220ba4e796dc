"""Prometheus metrics (prometheus_client), from every process to one endpoint.

Workers, their pool children and the ASGI server each write their counts to files in
PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode; settings.py sets it before
anything imports the client). `GET /metrics` on the web process adds them up, and adds what
is read when scraped: active executions from the database, queue depths from RabbitMQ.

Counts are recorded with transaction.on_commit where a rollback could undo what they count.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import time
from collections.abc import Iterable

from django.conf import settings
from django.db.models import Count
from django.http import HttpResponse, JsonResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)

EXECUTIONS_STARTED = Counter("agentgraph_executions_started_total", "Graph executions started")
EXECUTIONS_FINISHED = Counter(
    "agentgraph_executions_finished_total", "Graph executions ended, by status", ["status"]
)
NODE_EXECUTIONS = Counter(
    "agentgraph_node_executions_total",
    "Node executions ended, by block and status",
    ["block", "status"],
)
NODE_RUN_SECONDS = Histogram(
    "agentgraph_node_run_seconds", "Time a block ran, by block", ["block"], buckets=SECONDS
)
NODE_QUEUE_WAIT_SECONDS = Histogram(
    "agentgraph_node_queue_wait_seconds",
    "Time from a node execution being queued to a worker starting it, by block",
    ["block"],
    buckets=SECONDS,
)
CREDITS_CHARGED = Counter("agentgraph_credits_charged_total", "Credits charged for usage")
WATCHDOG_RECOVERIES = Counter(
    "agentgraph_watchdog_recoveries_total",
    "Steps the watchdog took to restart stalled runs",
    ["kind"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "agentgraph_http_request_duration_seconds",
    "Web request latency, by route pattern, method and status",
    ["method", "route", "status"],
    buckets=SECONDS,
)


# --- read at scrape time ----------------------------------------------------------------------


class ActiveExecutionsCollector(Collector):
    def collect(self) -> Iterable[GaugeMetricFamily]:
        from executions.models import GraphExecution

        gauge = GaugeMetricFamily(
            "agentgraph_active_executions",
            "Graph executions not yet ended, by status",
            labels=["status"],
        )
        counts = dict.fromkeys(("QUEUED", "RUNNING", "PAUSED"), 0)
        for row in (
            GraphExecution.objects.filter(status__in=list(counts))
            .values("status")
            .annotate(n=Count("id"))
        ):
            counts[row["status"]] = row["n"]
        for status, n in counts.items():
            gauge.add_metric([status], n)
        yield gauge


class QueueDepthCollector(Collector):
    def collect(self) -> Iterable[GaugeMetricFamily]:
        from config.celery import app

        gauge = GaugeMetricFamily(
            "agentgraph_queue_depth", "Messages waiting in each Celery queue", labels=["queue"]
        )
        try:
            with app.connection_for_read() as conn:
                conn.ensure_connection(max_retries=1, timeout=2)
                channel = conn.default_channel
                for queue in app.conf.task_queues:
                    _, depth, _ = channel.queue_declare(queue=queue.name, passive=True)
                    gauge.add_metric([queue.name], depth)
        except Exception as exc:  # a scrape must still answer when the broker does not
            log.warning("queue depth unavailable: %s", exc)
        yield gauge


class OutboxCollector(Collector):
    def collect(self) -> Iterable[GaugeMetricFamily]:
        from executions.outbox import waiting

        count, oldest = waiting()
        yield GaugeMetricFamily(
            "agentgraph_outbox_messages",
            "Messages committed for publishing that the broker has not taken yet",
            value=count,
        )
        yield GaugeMetricFamily(
            "agentgraph_outbox_oldest_seconds",
            "Age of the oldest of them (0 when there are none)",
            value=oldest,
        )


def registry() -> CollectorRegistry:
    reg = CollectorRegistry()
    multiprocess.MultiProcessCollector(reg)
    reg.register(ActiveExecutionsCollector())
    reg.register(QueueDepthCollector())
    reg.register(OutboxCollector())
    return reg


# --- the endpoint -----------------------------------------------------------------------------


def metrics_view(request):
    """Prometheus text. Allowed with METRICS_TOKEN as a bearer token, or, with no token set,
    from METRICS_ALLOWED_NETWORKS (loopback by default)."""
    if not _allowed(request):
        return JsonResponse({"detail": "metrics are not available to this client"}, status=403)
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)


def _allowed(request) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        given = request.META.get("HTTP_AUTHORIZATION", "")
        return secrets.compare_digest(given.encode(), f"Bearer {token}".encode())
    try:
        client = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(client in ipaddress.ip_network(n) for n in settings.METRICS_ALLOWED_NETWORKS)


class RequestLatencyMiddleware:
    """Times each web request, labelled by its route pattern (not its path: ids in paths
    would make a series per object)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = match.route if match is not None else "unmatched"
        HTTP_REQUEST_SECONDS.labels(request.method, route, str(response.status_code)).observe(
            time.perf_counter() - started
        )
        return response
