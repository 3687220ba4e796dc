"""WebSocket subscribers for make bench's live figures, run in processes of their own.

Imports neither Django nor the project: each process opens its share of the sockets,
subscribes them to a graph, says it is ready, waits for the go, and reports what each socket
received (the receive time and the event) once every socket has its run's terminal event.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

CLIENT_PROCESSES = 4


def subscribe_from_processes(url: str, graph_id: str, subscribers: int,
                             start_run: Callable[[], Any]) -> tuple[list, Any]:  # fmt: skip
    """Open `subscribers` sockets over CLIENT_PROCESSES processes, then call start_run()
    and collect what every socket received. Returns (per socket: [(time, event)], run)."""
    context = multiprocessing.get_context("spawn")
    processes = min(CLIENT_PROCESSES, subscribers)
    ready, go, done = context.Queue(), context.Event(), context.Queue()
    shares = [subscribers // processes + (i < subscribers % processes) for i in range(processes)]
    children = [
        context.Process(target=_client_process, args=(url, graph_id, n, ready, go, done))
        for n in shares
    ]
    for child in children:
        child.start()
    try:
        for _ in children:
            ready.get(timeout=180)
        go.set()
        run = start_run()
        results: list = []
        for _ in children:
            results.extend(done.get(timeout=300))
        return results, run
    finally:
        for child in children:
            child.join(timeout=10)
            if child.is_alive():
                child.kill()


def _client_process(url, graph_id, count, ready, go, done) -> None:
    done.put(asyncio.run(_clients(url, graph_id, count, ready, go)))


async def _clients(url, graph_id, count, ready, go) -> list:
    all_ready, started = asyncio.Event(), asyncio.Event()
    counter: list[int] = [0, count]
    results: list = []
    tasks = [asyncio.create_task(_subscriber(url, graph_id, all_ready, started, counter, results))
             for _ in range(count)]  # fmt: skip
    await asyncio.wait_for(all_ready.wait(), timeout=170)
    ready.put(count)
    await asyncio.to_thread(go.wait)
    started.set()
    await asyncio.gather(*tasks)
    return results


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


def got_everything(received: list[tuple[float, dict]]) -> bool:
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
