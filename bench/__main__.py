"""make bench: the engine against raw Celery, measured in the same run on the same broker.

Starts its own worker (2 prefork processes, the production task settings) on bench-only
queues, then measures:
  (a) a chain of 100 trivial nodes: ms per node, vs raw Celery's chain hop;
  (b) step_through_items of 1,000 items into a trivial node: node executions/s, vs raw
      Celery's group throughput;
  (c) per-node time of chains of 100 and 2,000 nodes (flat cost with graph size).
Prints each figure with its ratio and writes them to bench-results/latest.json.
"""

import json
import os
import time
import uuid
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Production workers run without DEBUG (no per-query bookkeeping); measure that.
os.environ.setdefault("DJANGO_DEBUG", "0")
os.environ["CELERY_NODE_QUEUE"] = "bench.nodes"
os.environ["CELERY_ENGINE_QUEUE"] = "bench.engine"

import django

django.setup()

from celery import chain, group  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from tqdm import tqdm  # noqa: E402

from bench.tasks import noop  # noqa: E402
from config.celery import NODE_QUEUE, app  # noqa: E402
from config.worker_process import start_worker, stop_worker  # noqa: E402
from credits.services import ledger_apply  # noqa: E402
from executions import events  # noqa: E402
from executions.models import GraphExecution, NodeExecution  # noqa: E402
from executions.services import execution_create  # noqa: E402
from graphs.services import graph_create  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))


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


def best(fn, *args, higher_is_better=False):
    values = [fn(*args) for _ in range(REPEAT)]
    return (max if higher_is_better else min)(values), values


def main():
    user, _ = get_user_model().objects.get_or_create(username="bench")
    app.control.purge()
    worker = start_worker(
        "bench", ROOT / ".local" / "bench-worker.log", os.environ.copy(), "-I", "bench.tasks"
    )
    results = {}
    try:
        steps = [
            ("raw_chain_hop_ms", lambda: best(raw_chain_hop_ms)),
            ("raw_group_tasks_per_s", lambda: best(raw_group_rate, higher_is_better=True)),
            ("chain_100_ms_per_node", lambda: best(engine_chain_ms, user, 100)),
            (
                "fan_out_1000_nodes_per_s",
                lambda: best(engine_fan_out_rate, user, 1000, higher_is_better=True),
            ),
            ("chain_2000_ms_per_node", lambda: best(engine_chain_ms, user, 2000)),
        ]
        engine_chain_ms(user, 10)  # warm the worker's connections and plan cache
        for name, step in tqdm(steps, desc="benchmarks", unit="step"):
            value, values = step()
            results[name] = {"best": round(value, 3), "runs": [round(v, 3) for v in values]}
        live = live_figures(user)  # needs the worker too
    finally:
        stop_worker(worker)
    r = {k: v["best"] for k, v in results.items()}
    report = [
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
            "(c) chain of 2,000: ms per node",
            r["chain_2000_ms_per_node"],
            f"chain of 100 {r['chain_100_ms_per_node']:.2f} ms",
            r["chain_2000_ms_per_node"] / r["chain_100_ms_per_node"],
            "x the 100-node chain (flat: ~1.0)",
        ),
    ]
    print()
    for label, value, baseline, ratio, unit in report:
        print(f"{label:44} {value:9.2f}   {baseline:28} ratio {ratio:5.2f} {unit}")
    print()
    for row in live:
        print(
            f"(d/e) {row['subscribers']:4d} subscriber(s) on one ASGI process: "
            f"{row['served_every_event']}/{row['subscribers']} got every event; "
            f"event latency p50 {row['latency_p50_ms']} ms, p99 {row['latency_p99_ms']} ms"
        )
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(
        json.dumps({"results": results, "live": live, "note": f"best of {REPEAT} runs"}, indent=2)
    )
    print(f"\n(best of {REPEAT} runs each; all runs in bench-results/latest.json)")


if __name__ == "__main__":
    main()
