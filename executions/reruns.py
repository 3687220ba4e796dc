"""Re-running a run from some of its nodes (rerun_plans.py decides what runs and what is
reused; starts.py starts it): a new run reusing the recorded outputs of every node not
downstream of the chosen ones, on the run's version or a newer one, with inputs overridden
if asked. Its preview says what a re-run would reuse, run, fire again and cost."""

from __future__ import annotations

from typing import Any

from django.http import Http404

from blocks.registry import get_block_class
from credits.costs import price_of
from graphs.models import GraphVersion
from graphs.selectors import version_get
from graphs.validation import GraphInvalid

from .control import ConflictingState
from .engine import TERMINAL, node_input
from .models import GraphExecution
from .plans import plan_for_version
from .rerun_plans import RerunPlan, rerun_plan
from .runs import execution_create


def rerun_preview(
    *, execution: GraphExecution, from_nodes: list[str], version: int | None = None,
    inputs: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """What the re-run would reuse and run, which nodes that run act on the world (send,
    post, pay), and the least it costs (the per-run prices of what runs). Creates nothing."""
    target, _merged, plan = _planned(execution, from_nodes, version, inputs)
    nodes = plan_for_version(target.pk).nodes
    sensitive = []
    for node_id in plan.run:
        cls = get_block_class(nodes[node_id].block)
        if cls is not None and cls.is_sensitive(node_input(nodes[node_id].input_default, {})):
            sensitive.append(node_id)
    return {
        "reused": plan.reused,
        "run": plan.run,
        "sensitive": sensitive,
        "min_cost": sum(price_of(nodes[n].block).per_run for n in plan.run),
    }


def rerun_create(
    *, user, execution: GraphExecution, from_nodes: list[str], version: int | None = None,
    inputs: dict[str, Any] | None = None,
) -> GraphExecution:  # fmt: skip
    """The re-run, created and started like any run (its slot, limits, first paid node);
    ConflictingState while the run has not ended, GraphInvalid for nodes or inputs."""
    if execution.status not in TERMINAL:
        raise ConflictingState(
            f"a run can be re-run once it has ended; this one is {execution.status}"
        )
    target, merged, plan = _planned(execution, from_nodes, version, inputs)
    return execution_create(
        user=user, graph=execution.graph, inputs=merged, version=target.version,
        budget=execution.budget, rerun=(execution.pk, plan.run),
    )  # fmt: skip


def _planned(
    execution: GraphExecution, from_nodes: list[str], version: int | None,
    inputs: dict[str, Any] | None,
) -> tuple[GraphVersion, dict[str, Any], RerunPlan]:  # fmt: skip
    try:
        target = version_get(graph=execution.graph, version=version) if version else None
    except Http404 as exc:
        raise GraphInvalid([{"field": "version", "message": str(exc)}]) from exc
    target = target or execution.graph_version
    merged = {**execution.inputs, **(inputs or {})}
    changed = {
        name
        for name in set(merged) | set(execution.inputs)
        if merged.get(name) != execution.inputs.get(name)
    }
    old = plan_for_version(execution.graph_version_id)
    try:
        plan = rerun_plan(old, plan_for_version(target.pk), set(from_nodes), changed)
    except KeyError as exc:
        raise GraphInvalid([{"field": "from_nodes", "message": exc.args[0]}]) from exc
    return target, merged, plan
