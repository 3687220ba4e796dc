"""Live-status benchmarks: event latency, and subscribers one ASGI process serves."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from accounts.services import token_issue
from bench.live_clients import got_everything, subscribe_from_processes
from executions.models import NodeExecution

ROOT = Path(__file__).resolve().parent.parent


def asgi_processes() -> int:
    """As many ASGI processes as scripts/run.sh and the compose file start."""
    return int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 1)


def start_asgi_server() -> tuple[subprocess.Popen, str]:
    """uvicorn with the workers `make run` starts, in its own process group."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with open(ROOT / ".local" / "bench-asgi.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
             "--port", str(port), "--lifespan", "off", "--timeout-graceful-shutdown", "3",
             "--workers", str(asgi_processes()), "--ws-per-message-deflate", "false",
             "--log-level", "warning"],
            cwd=ROOT, env={**os.environ, "DATABASE_POOL": "1"}, stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("bench ASGI server did not start; see .local/bench-asgi.log")


def measure(host: str, user, graph, start_run, subscribers: int) -> dict:
    """`subscribers` clients subscribe to a graph; one run of a chain goes; each must get
    every event of it. Latency: client receive time minus the node's end in the database.
    The clients run in CLIENT_PROCESSES processes of their own (bench/live_clients.py), so
    that parsing a thousand sockets' messages is not one process's bottleneck."""
    token = token_issue(user=user)[0]
    url = f"ws://{host}/ws/executions/?token={token}"
    results, run = subscribe_from_processes(url, str(graph.pk), subscribers, start_run)
    ended = {
        ne_id: stamp.timestamp()
        for ne_id, stamp in NodeExecution.objects.filter(execution_id=run.pk).values_list(
            "id", "ended_at"
        )
        if stamp
    }
    latencies = [
        (at - ended[e["node_execution_id"]]) * 1000
        for received in results
        for at, e in received
        if e.get("type") == "node" and e.get("status") == "COMPLETED"
        and e["node_execution_id"] in ended
    ]  # fmt: skip
    latencies.sort()
    return {
        "subscribers": subscribers,
        "served_every_event": sum(1 for r in results if got_everything(r)),
        "latency_p50_ms": round(statistics.median(latencies), 2) if latencies else None,
        "latency_p99_ms": round(latencies[max(0, int(len(latencies) * 0.99) - 1)], 2)
        if latencies
        else None,
    }
