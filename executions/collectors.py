"""Engine figures read when /metrics is scraped: active executions from the database, queue
depths from RabbitMQ, what waits in the outbox."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from celery import current_app
from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .models import GraphExecution
from .outbox import waiting

log = logging.getLogger(__name__)


def collectors() -> list[Collector]:
    return [ActiveExecutionsCollector(), QueueDepthCollector(), OutboxCollector()]


class ActiveExecutionsCollector(Collector):
    def collect(self) -> Iterable[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "agentgraph_active_executions",
            "Graph executions not yet ended, by status",
            labels=["status"],
        )
        counts = dict.fromkeys(("QUEUED", "RUNNING", "PAUSED", "REVIEW"), 0)
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
        app = current_app
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
