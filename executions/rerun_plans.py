"""What a re-run from some nodes reuses and what it runs: plain functions over two plans.

A re-run (issue 19) reuses the recorded outputs of every node it does not have to run, and
runs the chosen nodes and everything downstream of them. On another version of the graph
a node is reusable only if it and everything upstream of it is unchanged: its block, its
own settings (defaults, timeout) and its incoming links, and the same of every node
upstream, transitively. In a graph with loops that is one rule: the changed nodes and the
chosen ones, with everything downstream of any of them, run; the rest are reused.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from .engine import NodeSpec, Plan


@dataclass(frozen=True)
class RerunPlan:
    """The nodes a re-run runs (in document order) and those it reuses."""

    run: list[str]
    reused: list[str]


def node_fingerprint(plan: Plan, node_id: str) -> str:
    """A content hash of a node's own definition and its incoming links: equal on two
    versions when nothing about the node itself changed."""
    node: NodeSpec = plan.nodes[node_id]
    links = sorted(
        (link.source_id, link.source_name, link.sink_name, link.is_static)
        for link in plan.in_links[node_id]
    )
    body = json.dumps(
        [node.block, node.input_default, node.timeout, links], sort_keys=True, default=str
    )
    return hashlib.sha256(body.encode()).hexdigest()


def changed_nodes(old: Plan, new: Plan) -> set[str]:
    """Nodes of `new` that are not the same in `old` (new ones included)."""
    return {
        node_id
        for node_id in new.nodes
        if node_id not in old.nodes
        or node_fingerprint(old, node_id) != node_fingerprint(new, node_id)
    }


def downstream_closure(plan: Plan, start: set[str]) -> set[str]:
    """`start` and every node reachable from it along links (loops included)."""
    seen = set(start)
    queue = deque(start)
    while queue:
        for sink in plan.downstream(queue.popleft()):
            if sink not in seen:
                seen.add(sink)
                queue.append(sink)
    return seen


def rerun_plan(
    old: Plan, new: Plan, from_nodes: set[str], inputs_changed: AbstractSet[str] = frozenset()
) -> RerunPlan:
    """What a re-run of a run of `old` on `new` from `from_nodes` runs and reuses.
    `inputs_changed`: the names of graph inputs given other values (their `input` nodes
    run again)."""
    unknown = from_nodes - set(new.nodes)
    if unknown:
        raise KeyError(f"no node {sorted(unknown)[0]!r} in this version")
    input_nodes = {
        node_id
        for node_id, node in new.nodes.items()
        if node.block == "input" and node.input_default.get("name") in inputs_changed
    }
    run = downstream_closure(new, from_nodes | changed_nodes(old, new) | input_nodes)
    order = list(new.nodes)
    return RerunPlan(run=[n for n in order if n in run], reused=[n for n in order if n not in run])
