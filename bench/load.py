"""API-driven figures for make bench, over HTTP against a real uvicorn process:
  (f) many small executions submitted through the API at once: all complete, executions/s;
  (g) the API under load: 100 concurrent clients, p50/p99 latency and requests/s of
      GET /api/executions/{id}/ and POST /api/graphs/{id}/execute/.
The load comes from httpx2's async client in this process (no wrk on these machines), so the
figures are a floor of what the server does: the client shares the two cores."""

from __future__ import annotations

import asyncio
import statistics
import time

import httpx2

from accounts.services import token_issue
from executions.models import GraphExecution

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


def many_executions(host: str, user, graph_id, count: int, timeout: float = 600) -> dict:
    """Submit `count` executions at once (all requests in flight together), then wait for
    every one to end. None may be lost or fail."""

    headers = _headers(user)  # the database is read here, not inside the event loop

    async def submit():
        limits = httpx2.Limits(max_connections=count, max_keepalive_connections=count)
        async with httpx2.AsyncClient(
            base_url=f"http://{host}", headers=headers, timeout=120, limits=limits
        ) as client:
            responses = await asyncio.gather(
                *(client.post(f"/api/graphs/{graph_id}/execute/", json={}) for _ in range(count))
            )
        return responses

    started = time.perf_counter()
    responses = asyncio.run(submit())
    submitted = time.perf_counter() - started
    refused = [r.status_code for r in responses if r.status_code != 201]
    if refused:
        raise SystemExit(f"{len(refused)} submissions refused: {sorted(set(refused))}")
    ids = [r.json()["id"] for r in responses]
    runs = GraphExecution.objects.filter(pk__in=ids)
    while runs.exclude(status__in=TERMINAL).exists():
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"{count} executions did not all end within {timeout}s")
        time.sleep(0.1)
    elapsed = time.perf_counter() - started
    statuses = dict.fromkeys(TERMINAL, 0)
    for status in runs.values_list("status", flat=True):
        statuses[status] += 1
    if statuses["COMPLETED"] != count:
        raise SystemExit(f"not every execution completed: {statuses}")
    return {
        "executions": count,
        "completed": statuses["COMPLETED"],
        "submit_seconds": round(submitted, 2),
        "total_seconds": round(elapsed, 2),
        "executions_per_s": round(count / elapsed, 1),
    }


def api_load(host: str, user, graph_id, clients: int = 100, seconds: float = 10) -> dict:
    """`clients` concurrent clients, each sending requests back to back for `seconds`."""
    run_id = GraphExecution.objects.filter(graph_id=graph_id).values_list("pk", flat=True)[0]
    endpoints = {
        "GET /api/executions/{id}/": ("GET", f"/api/executions/{run_id}/"),
        "POST /api/graphs/{id}/execute/": ("POST", f"/api/graphs/{graph_id}/execute/"),
    }
    results = {}
    headers = _headers(user)
    for label, (method, path) in endpoints.items():
        results[label] = asyncio.run(_hammer(host, headers, method, path, clients, seconds))
    return results


async def _hammer(host, headers, method, path, clients, seconds) -> dict:
    latencies: list[float] = []
    errors: dict[int, int] = {}
    stop = time.perf_counter() + seconds
    limits = httpx2.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx2.AsyncClient(
        base_url=f"http://{host}", headers=headers, timeout=60, limits=limits
    ) as client:

        async def one_client():
            while time.perf_counter() < stop:
                sent = time.perf_counter()
                response = await client.request(method, path, json={} if method == "POST" else None)
                latencies.append(time.perf_counter() - sent)
                if response.status_code >= 400:
                    errors[response.status_code] = errors.get(response.status_code, 0) + 1

        began = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "clients": clients,
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
        "errors": errors,
    }
