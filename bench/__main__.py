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
import time
import traceback
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

from bench.memory import MemorySampler  # noqa: E402
from bench.report import report  # noqa: E402
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
# The small runs come from this many users (each under ENGINE_MAX_RUNNING_PER_USER, 50
# running at once: the rest of each user's runs wait for a slot, as they would).
API_USERS = int(os.environ.get("BENCH_API_USERS", "10"))


def bench_users(count: int) -> list:
    users = []
    for i in range(count):
        user, _ = get_user_model().objects.get_or_create(username=f"bench-{i}")
        ledger_apply(
            user_id=user.pk, amount=10**6, type="TOP_UP", reference=f"bench:{uuid.uuid4()}"
        )
        users.append(user)
    return users


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


def live_figures(user, memory, subscriber_counts=(1, 50, 200, 1000)):
    """(d) event latency and (e) subscribers the ASGI processes serve, on a 30-node chain."""
    from bench.live import measure, start_asgi_server

    memory.begin("live")
    server, host = start_asgi_server()
    memory.watch("asgi", server.pid)
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
        memory.watch("asgi", None)
        stop_worker(server)  # stops the server's whole process group


PHASES = ("nodes", "big", "small", "api", "live", "capacity")


def capacity_figures(user, memory) -> list[dict]:
    """What a node and a run cost PostgreSQL and Redis (bench/capacity.py)."""
    from bench.capacity import measure
    from bench.load import small_graph

    memory.begin("capacity")
    small = graph_create(owner=user, document=small_graph()).graph

    def small_runs(count=100):
        ids = [execution_create(user=user, graph=small, inputs={}).pk for _ in range(count)]
        deadline = time.monotonic() + 300
        while GraphExecution.objects.filter(pk__in=ids, status__in=["QUEUED", "RUNNING"]).exists():
            if time.monotonic() > deadline:
                raise SystemExit("capacity: small runs did not end")
            time.sleep(0.5)

    return [
        measure("chain of 100", lambda: engine_chain_ms(user, 100), nodes=100, runs=1),
        measure("fan-out of 1,000", lambda: engine_fan_out_rate(user, 1000), nodes=1001, runs=1),
        measure("100 runs of 5 nodes", small_runs, nodes=500, runs=100),
    ]


def main():
    only = [p for p in os.environ.get("BENCH_ONLY", ",".join(PHASES)).split(",") if p]
    unknown = set(only) - set(PHASES)
    if unknown:
        raise SystemExit(f"BENCH_ONLY: unknown phases {sorted(unknown)}; choose from {PHASES}")
    user, _ = get_user_model().objects.get_or_create(username="bench")
    ledger_apply(user_id=user.pk, amount=10**6, type="TOP_UP", reference=f"bench:{uuid.uuid4()}")
    app.control.purge()
    worker = start_worker(
        "bench", ROOT / ".local" / "bench-worker.log", os.environ.copy(), "-I", "bench.tasks"
    )
    memory = MemorySampler(worker=worker.pid)
    results: dict = {}
    try:
        memory.begin("warm-up")
        for _ in range(3):  # warm the worker's connections, plan cache and the machine
            engine_chain_ms(user, 30)
            raw_chain_hop_ms(30)
        phases = {
            "nodes": lambda: results.update(node_figures(user, memory)),
            "big": lambda: results.update(big_figures(user, memory)),
            "api": lambda: results.update(api_figures(user, memory, only)),
            "live": lambda: results.update(live=live_figures(user, memory)),
            "capacity": lambda: results.update(capacity=capacity_figures(user, memory)),
        }
        if "small" in only and "api" not in only:
            phases["small"] = phases["api"]  # api_figures measures both, as `only` says
        for name, phase in phases.items():
            if name not in only:
                continue
            try:
                phase()
            except Exception:  # the other phases' figures are still reported
                traceback.print_exc()
                results.setdefault("failed_phases", []).append(name)
    finally:
        memory.stop()
        stop_worker(worker)
    report(
        results, memory.phases, big=BIG, api_runs=API_RUNS, repeat=REPEAT,
        out=ROOT / "bench-results",
    )  # fmt: skip


def node_figures(user, memory) -> dict:
    """(a) and (b): raw Celery and the engine take turns, so that both see the same machine
    (it is shared and noisy); each figure is the best of its REPEAT runs."""
    paired = {
        "raw_chain_hop_ms": (raw_chain_hop_ms, (), min),
        "chain_100_ms_per_node": (engine_chain_ms, (user, 100), min),
        "raw_group_tasks_per_s": (raw_group_rate, (), max),
        "fan_out_1000_nodes_per_s": (engine_fan_out_rate, (user, 1000), max),
    }
    memory.begin("chains and fan-outs")
    runs: dict[str, list[float]] = {name: [] for name in paired}
    for _ in tqdm(range(REPEAT), desc="paired runs", unit="round"):
        for name, (fn, args, _) in paired.items():
            runs[name].append(fn(*args))
    return {
        name: {"best": round(pick(runs[name]), 3), "runs": [round(v, 3) for v in runs[name]]}
        for name, (_, _, pick) in paired.items()
    }


def big_figures(user, memory) -> dict:
    """(c) flat cost: the BIG-sized runs, once each."""
    results = {}
    for name, fn in tqdm(
        [
            (f"chain_{BIG}_ms_per_node", engine_chain_ms),
            (f"fan_out_{BIG}_nodes_per_s", engine_fan_out_rate),
        ],
        desc="large runs",
        unit="run",
    ):
        memory.begin(name)
        value = fn(user, BIG)
        results[name] = {"best": round(value, 3), "runs": [round(value, 3)]}
    return results


def api_figures(user, memory, only) -> dict:
    """(f) many small runs through the API against raw Celery's chains; (g) the API under
    load against /health."""
    from bench.live import start_asgi_server
    from bench.load import api_load, many_executions, raw_chains_rate, small_graph

    results: dict = {}
    server, host = start_asgi_server()
    memory.watch("asgi", server.pid)
    try:
        graph = graph_create(owner=user, document=small_graph()).graph
        if "small" in only:
            memory.begin("small runs")
            nodes = len(small_graph()["nodes"])
            targets = [(u, graph_create(owner=u, document=small_graph()).graph.pk)
                       for u in bench_users(API_USERS)]  # fmt: skip
            rounds = []
            for _ in range(2):  # taking turns, as (a) and (b) do
                rounds.append(
                    {
                        "raw": round(raw_chains_rate(API_RUNS, nodes), 2),
                        "engine": many_executions(host, targets, API_RUNS),
                    }
                )
            results["small_runs"] = {"nodes_per_run": nodes, "rounds": rounds}
        if "api" in only:
            memory.begin("api load")
            if not GraphExecution.objects.filter(graph=graph).exists():
                many_executions(host, [(user, graph.pk)], 10)
            results["api_load"] = api_load(host, user, graph.pk, clients=100, seconds=10)
            # The load's executions finish before the next phase.
            while GraphExecution.objects.filter(
                graph=graph, status__in=["QUEUED", "RUNNING"]
            ).exists():
                time.sleep(0.2)
        return results
    finally:
        memory.watch("asgi", None)
        stop_worker(server)


if __name__ == "__main__":
    main()
