"""make bench's report: each figure with its same-run baseline, ratio and goal (met or not),
printed and written to bench-results/latest.json."""

from __future__ import annotations

import json
from pathlib import Path


def goals(results: dict, *, big: int, api_runs: int) -> list[dict]:
    """Each figure of the bench next to its same-run baseline, its ratio and its goal."""
    rows: list[dict] = []

    def row(label, value, unit, baseline_label, baseline, ratio, goal, met):
        rows.append(
            {
                "figure": label,
                "value": round(value, 2),
                "unit": unit,
                "baseline": baseline_label,
                "baseline_value": round(baseline, 2),
                "ratio": round(ratio, 2),
                "goal": goal,
                "met": bool(met),
            }
        )

    r = {k: v["best"] for k, v in results.items() if isinstance(v, dict) and "best" in v}
    if "chain_100_ms_per_node" in r:
        ratio = r["chain_100_ms_per_node"] / r["raw_chain_hop_ms"]
        row(
            "(a) chain of 100",
            r["chain_100_ms_per_node"],
            "ms/node",
            "raw Celery chain hop",
            r["raw_chain_hop_ms"],
            ratio,
            "<= 1.3x",
            ratio <= 1.3,
        )
        ratio = r["fan_out_1000_nodes_per_s"] / r["raw_group_tasks_per_s"]
        row(
            "(b) fan-out of 1,000",
            r["fan_out_1000_nodes_per_s"],
            "nodes/s",
            "raw Celery group",
            r["raw_group_tasks_per_s"],
            ratio,
            ">= 0.85x",
            ratio >= 0.85,
        )
    if f"chain_{big}_ms_per_node" in r and "chain_100_ms_per_node" in r:
        ratio = r[f"chain_{big}_ms_per_node"] / r["chain_100_ms_per_node"]
        row(
            f"(c) chain of {big:,}",
            r[f"chain_{big}_ms_per_node"],
            "ms/node",
            "chain of 100",
            r["chain_100_ms_per_node"],
            ratio,
            "<= 1.2x",
            ratio <= 1.2,
        )
        ratio = r["fan_out_1000_nodes_per_s"] / r[f"fan_out_{big}_nodes_per_s"]
        row(
            f"(c) fan-out of {big:,}",
            r[f"fan_out_{big}_nodes_per_s"],
            "nodes/s",
            "fan-out of 1,000 (time per node, ratio)",
            r["fan_out_1000_nodes_per_s"],
            ratio,
            "<= 1.2x",
            ratio <= 1.2,
        )
    live = {entry["subscribers"]: entry for entry in results.get("live", [])}
    if 50 in live and max(live) >= 1000:
        top = live[max(live)]
        ratio = (top["latency_p99_ms"] or 0) / max(live[50]["latency_p99_ms"] or 1, 1)
        served = top["served_every_event"] == top["subscribers"]
        row(
            f"(d/e) live, {top['subscribers']:,} subscribers: p99 event latency",
            top["latency_p99_ms"] or 0,
            "ms",
            "p99 at 50 subscribers",
            live[50]["latency_p99_ms"] or 0,
            ratio,
            "<= 5x, every subscriber gets every event",
            ratio <= 5 and served,
        )
    small = results.get("small_runs")
    if small:
        engine = max(r["engine"]["executions_per_s"] for r in small["rounds"])
        raw = max(r["raw"] for r in small["rounds"])
        row(
            f"(f) {api_runs:,} small runs through the API",
            engine,
            "runs/s",
            f"raw Celery, {api_runs:,} chains of {small['nodes_per_run']}",
            raw,
            engine / raw,
            ">= 0.5x",
            engine / raw >= 0.5,
        )
    load = results.get("api_load")
    if load:
        health = load["GET /health"]
        for label, rate_goal in (
            ("GET /api/executions/{id}/", 0.5),
            ("POST /api/graphs/{id}/execute/", 0.3),
        ):
            figures = load[label]
            ratio = figures["requests_per_s"] / health["requests_per_s"]
            tail = figures["p99_ms"] / health["p99_ms"]
            clean = not figures["errors"] and not health["errors"]
            tail_goal = label.startswith("GET")
            row(
                f"(g) {label}, 100 clients",
                figures["requests_per_s"],
                "req/s",
                "/health, same server",
                health["requests_per_s"],
                ratio,
                f">= {rate_goal}x" + (", p99 <= 3x /health's" if tail_goal else "") + ", no errors",
                ratio >= rate_goal and clean and (tail <= 3 or not tail_goal),
            )
            rows[-1]["p99_ratio"] = round(tail, 2)
    return rows


def report(results, memory, *, big: int, api_runs: int, repeat: int, out: Path) -> None:
    rows = goals(results, big=big, api_runs=api_runs)
    print()
    for r in rows:
        print(
            f"{r['figure']:48} {r['value']:9.2f} {r['unit']:8} vs {r['baseline']} "
            f"{r['baseline_value']:.2f}: ratio {r['ratio']:.2f} (goal {r['goal']}) "
            f"{'met' if r['met'] else 'NOT MET'}"
        )
    print()
    for row in results.get("live", []):
        print(
            f"(d/e) {row['subscribers']:4d} subscriber(s): "
            f"{row['served_every_event']}/{row['subscribers']} got every event; "
            f"event latency p50 {row['latency_p50_ms']} ms, p99 {row['latency_p99_ms']} ms"
        )
    for i, round_ in enumerate(results.get("small_runs", {}).get("rounds", []), 1):
        batch = round_["engine"]
        print(
            f"(f) round {i}: {batch['executions']} executions submitted through the API at "
            f"once: {batch['completed']} completed in {batch['total_seconds']} s "
            f"({batch['executions_per_s']}/s; submitting took {batch['submit_seconds']} s); "
            f"raw Celery chains {round_['raw']}/s"
        )
    for row in results.get("capacity", []):
        node, run = row["per_node"], row["per_run"]
        print(
            f"(i) {row['scenario']:20} per node: {node['transactions']} transactions, "
            f"{node['rows_written']} rows written, {node['redis_commands']} Redis commands; "
            f"per run: {run['transactions']} / {run['rows_written']} / {run['redis_commands']}"
        )
    for label, row in results.get("api_load", {}).items():
        print(
            f"(g) {label:32} {row['clients']} clients: {row['requests_per_s']} requests/s, "
            f"p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, errors {row['errors'] or 'none'}"
        )
    print()
    for phase, groups in memory.items():
        print(
            f"(h) {phase:24} "
            + "; ".join(
                f"{name} {m['at_start_mib']}->{m['at_end_mib']} MiB (peak {m['peak_mib']}, "
                f"largest process {m['largest_mib']})"
                for name, m in groups.items()
            )
        )
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(
        json.dumps(
            {
                "goals": rows,
                "results": results,
                "memory_mib": memory,
                "note": f"best of {repeat} runs (the {big:,}-sized runs once)",
            },
            indent=2,
        )
    )
    print(f"\n(best of {repeat} runs each, {big:,}-sized runs once; bench-results/latest.json)")
