"""Live-status benchmarks: event latency, and subscribers one ASGI process serves."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from accounts.services import token_issue
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
             "--workers", str(asgi_processes()),
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


async def _subscriber(url: str, graph_id: str, ready: asyncio.Event, started: asyncio.Event,
                      counter: list[int], results: list) -> None:  # fmt: skip
    received: list[tuple[float, dict]] = []
    counted = False
    try:
        async with connect(url, open_timeout=60, max_queue=None) as ws:
            await ws.send(json.dumps({"action": "subscribe", "graph_id": graph_id}))
            await ws.recv()  # subscribed
            counted = _count_in(counter, ready)
            await started.wait()
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), timeout=20))
                if event.get("type") == "notification":
                    continue
                received.append((time.time(), event))
                if event.get("type") == "execution" and event.get("terminal"):
                    break
    except (OSError, TimeoutError, ConnectionClosed):  # counted as not served
        pass
    finally:
        if not counted:
            _count_in(counter, ready)
        results.append(received)


def _count_in(counter: list[int], ready: asyncio.Event) -> bool:
    counter[0] += 1
    if counter[0] == counter[1]:
        ready.set()
    return True


def _got_everything(received: list[tuple[float, dict]]) -> bool:
    """A snapshot, then every later event without a gap, ending with the terminal one."""
    if not received:
        return False
    seqs = [e["seq"] for _, e in received]
    last = received[-1][1]
    return (
        received[0][1]["type"] == "snapshot"
        and seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        and last["type"] == "execution"
        and bool(last.get("terminal"))
    )


def measure(host: str, user, graph, start_run, subscribers: int) -> dict:
    """`subscribers` clients subscribe to a graph; one run of a chain goes; each must get
    every event of it. Latency: client receive time minus the node's end in the database."""
    token = token_issue(user=user)[0]
    url = f"ws://{host}/ws/executions/?token={token}"
    run = None

    async def main():
        nonlocal run
        ready, started = asyncio.Event(), asyncio.Event()
        counter: list[int] = [0, subscribers]
        results: list = []
        tasks = [asyncio.create_task(_subscriber(url, str(graph.pk), ready, started, counter,
                                                 results)) for _ in range(subscribers)]  # fmt: skip
        await asyncio.wait_for(ready.wait(), timeout=120)
        started.set()
        run = await asyncio.to_thread(start_run)
        await asyncio.gather(*tasks)
        return results

    results = asyncio.run(main())
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
        "served_every_event": sum(1 for r in results if _got_everything(r)),
        "latency_p50_ms": round(statistics.median(latencies), 2) if latencies else None,
        "latency_p99_ms": round(latencies[max(0, int(len(latencies) * 0.99) - 1)], 2)
        if latencies
        else None,
    }
