"""The Prometheus series every process counts into (prometheus_client).

Workers, their pool children and the ASGI server each write their counts to files in
PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode; settings.py sets it before
anything imports the client); `GET /metrics` (config/metrics.py) adds them up.

Counts are recorded with transaction.on_commit where a rollback could undo what they count.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
