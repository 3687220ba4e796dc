"""API-driven figures for make bench, over HTTP against a real uvicorn process:
  (f) many small executions submitted through the API at once: all complete, executions/s;
  (g) the API under load: 100 concurrent clients, p50/p99 latency and requests/s of
      GET /api/executions/{id}/ and POST /api/graphs/{id}/execute/.
The load comes from bench/hammer.py (httpx2's async client) in a process of its own; it
shares the machine's cores with the server, so the figures are a floor of what the server
does, and each is read against /health measured the same way in the same run."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx2

from accounts.services import token_issue
from executions import events
from executions.models import GraphExecution

ROOT = Path(__file__).resolve().parent.parent
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


def small_graph() -> dict:
    """5 nodes: input -> 3 store_value -> output."""
    nodes = [{"id": "in", "block": "input", "input_default": {"name": "x", "value": 1}}]
    links = []
    previous, pin = "in", "result"
    for i in range(3):
        nodes.append({"id": f"s{i}", "block": "store_value"})
        links.append({"source_id": previous, "source_name": pin, "sink_id": f"s{i}",
                      "sink_name": "input"})  # fmt: skip
        previous, pin = f"s{i}", "output"
    nodes.append({"id": "out", "block": "output", "input_default": {"name": "y"}})
    links.append({"source_id": previous, "source_name": pin, "sink_id": "out",
                  "sink_name": "value"})  # fmt: skip
    return {"name": "small", "nodes": nodes, "links": links}


def _headers(user) -> dict[str, str]:
    return {"Authorization": f"Token {token_issue(user=user)[0]}"}


def many_executions(host: str, targets: list[tuple], count: int, timeout: float = 600) -> dict:
    """Submit `count` executions at once (all requests in flight together), spread over
    `targets` (user, graph id) in turn, as many users would; then wait for every one to end.
    None may be lost or fail."""
    # The database is read here, not inside the event loop.
    plan = [(_headers(user), graph_id) for user, graph_id in targets]

    async def submit():
        limits = httpx2.Limits(max_connections=count, max_keepalive_connections=count)
        async with httpx2.AsyncClient(
            base_url=f"http://{host}", timeout=120, limits=limits
        ) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        f"/api/graphs/{plan[i % len(plan)][1]}/execute/",
                        json={},
                        headers=plan[i % len(plan)][0],
                    )
                    for i in range(count)
                )
            )

    started = time.perf_counter()
    responses = asyncio.run(submit())
    submitted = time.perf_counter() - started
    refused = [r.status_code for r in responses if r.status_code != 201]
    if refused:
        raise SystemExit(f"{len(refused)} submissions refused: {sorted(set(refused))}")
    ids = [r.json()["id"] for r in responses]
    # Waiting asks Redis which runs have published their terminal event (one EXISTS of
    # their keys): polling PostgreSQL for 1,000 ids ten times a second took a fifth of the
    # CPU the database had for the runs themselves.
    redis = events.client()
    ended_keys = [events.terminal_key(run_id) for run_id in ids]
    while redis.exists(*ended_keys) < count:
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"{count} executions did not all end within {timeout}s")
        time.sleep(0.1)
    elapsed = time.perf_counter() - started
    runs = GraphExecution.objects.filter(pk__in=ids)
    statuses = dict.fromkeys(TERMINAL, 0)
    for status in runs.values_list("status", flat=True):
        statuses[status] += 1
    if statuses["COMPLETED"] != count:
        raise SystemExit(f"not every execution completed: {statuses}")
    return {
        "executions": count,
        "users": len(targets),
        "completed": statuses["COMPLETED"],
        "submit_seconds": round(submitted, 2),
        "total_seconds": round(elapsed, 2),
        "executions_per_s": round(count / elapsed, 1),
    }


def api_load(host: str, user, graph_id, clients: int = 100, seconds: float = 10) -> dict:
    """`clients` concurrent clients, each sending requests back to back for `seconds`, from
    bench/hammer.py in a process of its own; /health on the same server first, the baseline."""
    run_id = GraphExecution.objects.filter(graph_id=graph_id).values_list("pk", flat=True)[0]
    endpoints = {
        "GET /health": ("GET", "/health"),
        "GET /api/executions/{id}/": ("GET", f"/api/executions/{run_id}/"),
        "POST /api/graphs/{id}/execute/": ("POST", f"/api/graphs/{graph_id}/execute/"),
    }
    header = "Authorization: " + _headers(user)["Authorization"]
    results = {}
    for label, (method, path) in endpoints.items():
        command = [
            sys.executable,
            "-m",
            "bench.hammer",
            host,
            method,
            path,
            "--clients",
            str(clients),
            "--seconds",
            str(seconds),
            "--header",
            header,
        ]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + 120, cwd=ROOT
        )
        if done.returncode:
            raise SystemExit(f"the load generator failed: {done.stderr[-2000:]}")
        results[label] = json.loads(done.stdout)
    return results


def raw_chains_rate(count: int, length: int) -> float:
    """Raw Celery's figure for (f): `count` chains of `length` no-op tasks, all submitted
    with apply_async at once on the same broker and worker, chains per second to the last."""
    from celery import chain

    from bench.tasks import noop
    from config.celery import NODE_QUEUE

    started = time.perf_counter()
    results = [
        chain(*(noop.si(i).set(queue=NODE_QUEUE) for i in range(length))).apply_async()
        for _ in range(count)
    ]
    for result in results:
        result.get(timeout=600)
    return count / (time.perf_counter() - started)
