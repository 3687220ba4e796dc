"""Following a run from a terminal: a progress bar fed by the run's live event log."""

from __future__ import annotations

import json
import time
from typing import Any

from django.http import Http404
from tqdm import tqdm

from . import events
from .engine import TERMINAL
from .models import GraphExecution
from .plans import plan_for_version
from .selectors import execution_detail


def follow(run_id: str, *, user, timeout: float, out) -> dict:
    """Show node executions finishing as they happen, and models' text as it streams;
    return the run's record at its end."""
    try:
        record = execution_detail(user=user, execution_id=run_id)
    except (Http404, ValueError) as exc:
        raise SystemExit(f"no run {run_id} of {user}") from exc
    # The bar counts the graph's nodes that have run (its total never moves); loops and
    # fan-outs run a node many times: the executions are counted beside it.
    total = len(plan_for_version(GraphExecution.objects.get(pk=run_id).graph_version_id).nodes)
    finished = {ne["id"] for ne in record["node_executions"] if ne["status"] in TERMINAL}
    nodes_done = {ne["node_id"] for ne in record["node_executions"] if ne["status"] in TERMINAL}
    bar = tqdm(
        total=total,
        initial=len(nodes_done),
        unit="node",
        file=out,
        desc=record["status"].lower(),
        postfix={"executions": len(finished)},
    )
    lines: dict[int, str] = {}  # a node's streamed text not yet shown (an unfinished line)

    def show_text(event: dict[str, Any], final: bool = False) -> None:
        text = lines.pop(event["node_execution_id"], "") + event.get("delta", "")
        *done, rest = text.split("\n")
        for line in done + ([rest] if final and rest else []):
            bar.write(f"{event['node_id']}> {line}", file=out)
        if rest and not final:
            lines[event["node_execution_id"]] = rest

    position = "0-0"
    deadline = time.monotonic() + timeout
    status = record["status"]
    while status not in TERMINAL and time.monotonic() < deadline:
        replies: Any = events.client().xread({events.stream_key(run_id): position}, block=1000)
        for _, entries in replies or []:
            for entry_id, fields in entries:
                position = entry_id.decode()
                event = json.loads(fields[b"e"])
                if event["type"] == "node" and "delta" in event:
                    show_text(event)  # a model's text, a line at a time as it arrives
                elif event["type"] == "node":
                    if event["node_execution_id"] in lines:
                        show_text(event, final=True)
                    if event["status"] in TERMINAL and event["node_execution_id"] not in finished:
                        finished.add(event["node_execution_id"])
                        bar.set_postfix(executions=len(finished))
                        if event["node_id"] not in nodes_done:
                            nodes_done.add(event["node_id"])
                            bar.update(1)
                elif event["type"] == "execution":
                    status = event["status"]
                    bar.set_description(status.lower())
        if not replies:  # quiet: the database knows the truth
            status = execution_detail(user=user, execution_id=run_id)["status"]
    bar.close()
    return execution_detail(user=user, execution_id=run_id)
