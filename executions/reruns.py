"""Re-running a run from some of its nodes (rerun_plans.py decides what runs and what is
reused; starts.py starts it): a new run reusing the recorded outputs of every node not
downstream of the chosen ones, on the run's version or a newer one, with inputs overridden
if asked. Its preview says what a re-run would reuse, run, fire again and cost."""

from __future__ import annotations

from typing import Any

from django.http import Http404

from blocks.registry import get_block_class
from credits.costs import price_of
from credits.tokens import answer_tokens_cost
from graphs.models import GraphVersion
from graphs.selectors import version_get
from graphs.validation import GraphInvalid

from .control import ConflictingState
from .engine import TERMINAL, Status, node_input
from .models import GraphExecution, NodeExecution
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
    return {"reused": plan.reused, "run": plan.run, **nodes_preview(target.pk, plan.run)}


def run_again(
    *, user, execution: GraphExecution, from_stopped: bool, version: int | None = None
) -> GraphExecution:
    """Runs a run again, on `version` or its own: a re-run from its stopped nodes when asked
    and it ended with some, else a fresh run with its inputs (any run may have one)."""
    from_nodes = _taken_up_at(execution, from_stopped)
    if from_nodes:
        return rerun_create(user=user, execution=execution, from_nodes=from_nodes, version=version)
    return execution_create(
        user=user, graph=execution.graph, inputs=execution.inputs,
        version=_target(execution, version).version, budget=execution.budget,
    )  # fmt: skip


def run_again_preview(
    *, execution: GraphExecution, from_stopped: bool, version: int | None = None
) -> dict[str, Any]:
    """run_again's preview: what it would reuse, run, fire again and cost."""
    from_nodes = _taken_up_at(execution, from_stopped)
    if from_nodes:
        return rerun_preview(execution=execution, from_nodes=from_nodes, version=version)
    target = _target(execution, version).pk
    every = list(plan_for_version(target).nodes)
    return {"reused": [], "run": every, **nodes_preview(target, every)}


def stopped_nodes(execution: GraphExecution) -> list[str]:
    """Where a run is taken up again: each node that failed (none handled its error) or was
    cancelled with the run; empty when none did (nothing ran, or everything completed)."""
    stopped = NodeExecution.objects.filter(
        execution=execution, status__in=(Status.FAILED, Status.CANCELLED)
    ).values_list("node_id", flat=True)
    return sorted(set(stopped))


def nodes_preview(version_id: int, node_ids: list[str]) -> dict[str, Any]:
    """Of these nodes of a version, when each runs once: the sensitive ones, the per-run
    prices in all (`min_cost`), and with the most their model calls may cost on the
    platform's key (`max_cost`; `token_priced` says per node, from its max_tokens)."""
    nodes = plan_for_version(version_id).nodes
    sensitive: list[str] = []
    token_priced: list[dict[str, Any]] = []
    for node_id in node_ids:
        cls = get_block_class(nodes[node_id].block)
        data = node_input(nodes[node_id].input_default, {})
        if cls is None:
            continue
        if cls.is_sensitive(data):
            sensitive.append(node_id)
        bound = cls.token_bound(data)
        if bound is not None:
            token_priced.append({
                "node_id": node_id, "model": bound.model, "answer_tokens": bound.answer_tokens,
                "max_cost": answer_tokens_cost(bound.model, bound.answer_tokens),
            })  # fmt: skip
    min_cost = sum(price_of(nodes[n].block).per_run for n in node_ids)
    return {
        "sensitive": sensitive,
        "min_cost": min_cost,
        "max_cost": min_cost + sum(t["max_cost"] for t in token_priced),
        "token_priced": token_priced,
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


def _taken_up_at(execution: GraphExecution, from_stopped: bool) -> list[str]:
    if from_stopped and execution.status in TERMINAL:
        return stopped_nodes(execution)
    return []


def _target(execution: GraphExecution, version: int | None) -> GraphVersion:
    """The version asked for (GraphInvalid if the graph has none so numbered), else the
    run's own."""
    if version is None:
        return execution.graph_version
    try:
        return version_get(graph=execution.graph, version=version)
    except Http404 as exc:
        raise GraphInvalid([{"field": "version", "message": str(exc)}]) from exc


def _planned(
    execution: GraphExecution, from_nodes: list[str], version: int | None,
    inputs: dict[str, Any] | None,
) -> tuple[GraphVersion, dict[str, Any], RerunPlan]:  # fmt: skip
    target = _target(execution, version)
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
    if not plan.run:
        raise GraphInvalid([{
            "field": "from_nodes",
            "message": "nothing would run: choose nodes to run from, override inputs or "
            "pick a version that changes some",
        }])  # fmt: skip
    return target, merged, plan
