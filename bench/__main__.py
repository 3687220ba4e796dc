"""make bench: the engine against raw Celery, measured in the same run on the same broker.

Starts its own worker (2 prefork processes, the production task settings) on bench-only
queues, then measures:
  (a) a chain of 100 trivial nodes: ms per node, vs raw Celery's chain hop;
  (b) step_through_items of 1,000 items into a trivial node: node executions/s, vs raw
      Celery's group throughput;
  (c) flat cost: a chain of 10,000 nodes per node vs the 100-node chain, and a fan-out of
      10,000 items vs the 1,000-item rate;
  (d/e) live events: latency, and subscribers one ASGI process serves;
  (f) 1,000 small executions submitted through the API at once: executions/s (twice);
  (g) the API under 100 concurrent clients: p50/p99 and requests/s;
  (h) the worker processes' resident memory, sampled all along (peak per phase).
Prints each figure with its ratio and writes them to bench-results/latest.json.
"""

import json
import os
import threading
import time
import uuid
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Production workers run without DEBUG (no per-query bookkeeping); measure that.
os.environ.setdefault("DJANGO_DEBUG", "0")
os.environ["CELERY_NODE_QUEUE"] = "bench.nodes"
os.environ["CELERY_ENGINE_QUEUE"] = "bench.engine"
os.environ["CELERY_BACKGROUND_QUEUE"] = "bench.background"
# A 10,000-node chain creates 10,000 node executions: above the default per-run cap.
os.environ.setdefault("ENGINE_MAX_NODE_EXECUTIONS", "50000")
# The API figures measure the engine and the server, not the rate limits.
os.environ.setdefault("API_THROTTLE_USER", "1000000/minute")

import django

django.setup()

import logging  # noqa: E402

logging.getLogger("httpx2").setLevel(logging.WARNING)  # one line per request otherwise

from celery import chain, group  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from tqdm import tqdm  # noqa: E402

from bench.tasks import noop  # noqa: E402
from common.worker_process import start_worker, stop_worker  # noqa: E402
from config.celery import NODE_QUEUE, app  # noqa: E402
from credits.services import ledger_apply  # noqa: E402
from executions import events  # noqa: E402
from executions.models import GraphExecution, NodeExecution  # noqa: E402
from executions.runs import execution_create  # noqa: E402
from graphs.services import graph_create  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
BIG = int(os.environ.get("BENCH_BIG", "10000"))  # the flat-scaling sizes
API_RUNS = int(os.environ.get("BENCH_API_RUNS", "1000"))


class MemorySampler:
    """Peak resident memory (VmRSS) of the worker's processes, per phase, from /proc."""

    def __init__(self, group_id: int):
        self.group_id = group_id
        self.phase = "start"
        self.peaks: dict[str, dict[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(0.25):
            sizes = _group_rss_mib(self.group_id)
            if sizes:
                peak = self.peaks.setdefault(self.phase, {"largest_process_mib": 0, "total_mib": 0})
                peak["largest_process_mib"] = max(peak["largest_process_mib"], max(sizes))
                peak["total_mib"] = max(peak["total_mib"], sum(sizes))

    def stop(self):
        self._stop.set()
        self._thread.join()


def _group_rss_mib(group_id: int) -> list[float]:
    sizes = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[2]) != group_id:  # field 5: process group
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(int(line.split()[1]) / 1024)
        except (OSError, ValueError, IndexError):
            continue
    return sizes


def raw_chain_hop_ms(hops=100):
    start = time.perf_counter()
    chain(*(noop.si(i).set(queue=NODE_QUEUE) for i in range(hops))).apply_async().get(timeout=120)
    return (time.perf_counter() - start) * 1000 / hops


def raw_group_rate(n=1000):
    start = time.perf_counter()
    group(noop.si(i).set(queue=NODE_QUEUE) for i in range(n)).apply_async().get(timeout=300)
    return n / (time.perf_counter() - start)


def chain_graph(length):
    nodes = [{"id": "n0", "block": "input", "input_default": {"name": "x", "value": 1}}]
    links = []
    for i in range(1, length):
        nodes.append({"id": f"n{i}", "block": "store_value"})
        links.append(
            {
                "source_id": f"n{i - 1}",
                "source_name": "result" if i == 1 else "output",
                "sink_id": f"n{i}",
                "sink_name": "input",
            }
        )
    return {"name": f"chain {length}", "nodes": nodes, "links": links}


def fan_out_graph(items):
    return {
        "name": f"fan-out {items}",
        "nodes": [
            {
                "id": "each",
                "block": "step_through_items",
                "input_default": {"items": list(range(items))},
            },
            {"id": "work", "block": "store_value"},
        ],
        "links": [
            {"source_id": "each", "source_name": "item", "sink_id": "work", "sink_name": "input"}
        ],
    }


def run_and_wait(user, graph, timeout=600):
    """Start a run and wait for its end the way a client would: blocked on the run's event
    stream until its terminal event (like raw Celery's result.get(), and without polling
    the database, which would take CPU from the run on a 2-core machine)."""
    start = time.perf_counter()
    execution = execution_create(user=user, graph=graph, inputs={})
    wait_for_end(execution.pk, start + timeout)
    elapsed = time.perf_counter() - start
    status = GraphExecution.objects.filter(pk=execution.pk).values_list("status", flat=True)[0]
    if status != "COMPLETED":
        raise SystemExit(f"run {execution.pk} ended {status}")
    return execution, elapsed


def wait_for_end(execution_id, deadline: float) -> None:
    client = events.client()
    key, last = events.stream_key(execution_id), "0-0"
    while time.perf_counter() < deadline:
        for _, entries in client.xread({key: last}, block=1000, count=1000) or []:
            for entry_id, fields in entries:
                last = entry_id
                event = json.loads(fields[b"e"])
                if event.get("type") == "execution" and event.get("terminal"):
                    return
    raise SystemExit(f"run {execution_id} did not finish in time")


def engine_chain_ms(user, length):
    graph = graph_create(owner=user, document=chain_graph(length)).graph
    _, elapsed = run_and_wait(user, graph)
    return elapsed * 1000 / length


def engine_fan_out_rate(user, items):
    graph = graph_create(owner=user, document=fan_out_graph(items)).graph
    execution, _ = run_and_wait(user, graph)
    stamps = NodeExecution.objects.filter(execution=execution)
    first = stamps.get(node_id="each").ended_at
    last = max(stamps.filter(node_id="work").values_list("ended_at", flat=True))
    return items / (last - first).total_seconds()


def live_figures(user, subscriber_counts=(1, 50, 200, 400)):
    """(d) event latency and (e) subscribers served by one ASGI process, on a 30-node chain."""
    from bench.live import measure, start_asgi_server

    server, host = start_asgi_server()
    try:
        results = []
        for count in subscriber_counts:
            # A 2 s sleep first, so that every subscriber has its snapshot before the chain's
            # events flow (it costs credits: the bench user is topped up for it).
            ledger_apply(
                user_id=user.pk, amount=10, type="TOP_UP", reference=f"bench:{uuid.uuid4()}"
            )
            document = chain_graph(30)
            document["nodes"][0] = {
                "id": "n0",
                "block": "sleep",
                "input_default": {"seconds": 2, "value": 1},
            }
            document["links"][0]["source_name"] = "output"
            graph = graph_create(owner=user, document=document).graph
            results.append(
                measure(
                    host,
                    user,
                    graph,
                    lambda g=graph: execution_create(user=user, graph=g, inputs={}),
                    count,
                )
            )
        return results
    finally:
        stop_worker(server)  # stops the server's whole process group


def main():
    user, _ = get_user_model().objects.get_or_create(username="bench")
    ledger_apply(user_id=user.pk, amount=10**6, type="TOP_UP", reference=f"bench:{uuid.uuid4()}")
    app.control.purge()
    worker = start_worker(
        "bench", ROOT / ".local" / "bench-worker.log", os.environ.copy(), "-I", "bench.tasks"
    )
    memory = MemorySampler(worker.pid)
    results: dict = {}
    try:
        for _ in range(3):  # warm the worker's connections, plan cache and the machine
            engine_chain_ms(user, 30)
            raw_chain_hop_ms(30)
        # Raw Celery and the engine take turns, so that both see the same machine (it is
        # shared and noisy); each figure is the best of its REPEAT runs.
        paired = {
            "raw_chain_hop_ms": (raw_chain_hop_ms, (), min),
            "chain_100_ms_per_node": (engine_chain_ms, (user, 100), min),
            "raw_group_tasks_per_s": (raw_group_rate, (), max),
            "fan_out_1000_nodes_per_s": (engine_fan_out_rate, (user, 1000), max),
        }
        runs: dict[str, list[float]] = {name: [] for name in paired}
        for _ in tqdm(range(REPEAT), desc="paired runs", unit="round"):
            for name, (fn, args, _) in paired.items():
                memory.phase = name
                runs[name].append(fn(*args))
        for name, (_, _, pick) in paired.items():
            results[name] = {
                "best": round(pick(runs[name]), 3),
                "runs": [round(v, 3) for v in runs[name]],
            }
        for name, step in tqdm(
            [
                (f"chain_{BIG}_ms_per_node", lambda: once(engine_chain_ms, user, BIG)),
                (f"fan_out_{BIG}_nodes_per_s", lambda: once(engine_fan_out_rate, user, BIG)),
            ],
            desc="large runs",
            unit="run",
        ):
            memory.phase = name
            value, values = step()
            results[name] = {"best": round(value, 3), "runs": [round(v, 3) for v in values]}
        memory.phase = "api"
        api = api_figures(user)
        memory.phase = "live"
        live = live_figures(user)  # needs the worker too
    finally:
        memory.stop()
        stop_worker(worker)
    report(results, api, live, memory.peaks)


def once(fn, *args):
    value = fn(*args)
    return value, [value]


def api_figures(user) -> dict:
    from bench.live import start_asgi_server
    from bench.load import api_load, many_executions, small_graph

    server, host = start_asgi_server()
    try:
        graph = graph_create(owner=user, document=small_graph()).graph
        batches = [many_executions(host, user, graph.pk, API_RUNS) for _ in range(2)]
        load = api_load(host, user, graph.pk, clients=100, seconds=10)
        # The load's executions finish before the next phase.
        while GraphExecution.objects.filter(graph=graph, status__in=["QUEUED", "RUNNING"]).exists():
            time.sleep(0.2)
        return {"batches": batches, "load": load}
    finally:
        stop_worker(server)


def report(results, api, live, memory) -> None:
    r = {k: v["best"] for k, v in results.items()}
    rows = [
        (
            "(a) chain of 100: ms per node",
            r["chain_100_ms_per_node"],
            f"raw chain hop {r['raw_chain_hop_ms']:.2f} ms",
            r["chain_100_ms_per_node"] / r["raw_chain_hop_ms"],
            "x raw (target <= 2.0)",
        ),
        (
            "(b) fan-out of 1,000: node executions/s",
            r["fan_out_1000_nodes_per_s"],
            f"raw group {r['raw_group_tasks_per_s']:.0f} tasks/s",
            r["fan_out_1000_nodes_per_s"] / r["raw_group_tasks_per_s"],
            "x raw (target >= 0.5)",
        ),
        (
            f"(c) chain of {BIG:,}: ms per node",
            r[f"chain_{BIG}_ms_per_node"],
            f"chain of 100 {r['chain_100_ms_per_node']:.2f} ms",
            r[f"chain_{BIG}_ms_per_node"] / r["chain_100_ms_per_node"],
            "x the 100-node chain (target <= 1.2)",
        ),
        (
            f"(c) fan-out of {BIG:,}: node executions/s",
            r[f"fan_out_{BIG}_nodes_per_s"],
            f"fan-out of 1,000 {r['fan_out_1000_nodes_per_s']:.0f}/s",
            r["fan_out_1000_nodes_per_s"] / r[f"fan_out_{BIG}_nodes_per_s"],
            "x slower than 1,000 items (target <= 1.2)",
        ),
    ]
    print()
    for label, value, baseline, ratio, unit in rows:
        print(f"{label:44} {value:9.2f}   {baseline:28} ratio {ratio:5.2f} {unit}")
    print()
    for row in live:
        print(
            f"(d/e) {row['subscribers']:4d} subscriber(s) on one ASGI process: "
            f"{row['served_every_event']}/{row['subscribers']} got every event; "
            f"event latency p50 {row['latency_p50_ms']} ms, p99 {row['latency_p99_ms']} ms"
        )
    print()
    for i, batch in enumerate(api["batches"], 1):
        print(
            f"(f) batch {i}: {batch['executions']} executions of 5 nodes submitted through the "
            f"API at once: {batch['completed']} completed in {batch['total_seconds']} s "
            f"({batch['executions_per_s']} executions/s; submitting took "
            f"{batch['submit_seconds']} s)"
        )
    for label, row in api["load"].items():
        print(
            f"(g) {label:32} {row['clients']} clients: {row['requests_per_s']} requests/s, "
            f"p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, errors {row['errors'] or 'none'}"
        )
    print()
    for phase, peak in memory.items():
        print(
            f"(h) worker memory during {phase:28} largest process "
            f"{peak['largest_process_mib']:.0f} MiB, "
            f"all worker processes {peak['total_mib']:.0f} MiB"
        )
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(
        json.dumps(
            {
                "results": results,
                "live": live,
                "api": api,
                "worker_memory_mib": memory,
                "note": f"best of {REPEAT} runs (the {BIG:,}-sized runs once)",
            },
            indent=2,
        )
    )
    print(f"\n(best of {REPEAT} runs each, {BIG:,}-sized runs once; bench-results/latest.json)")


if __name__ == "__main__":
    main()
