"""Where each node of a plan is drawn on the live page: a plain function of the plan."""

from __future__ import annotations

from .engine import Plan


def layout(plan: Plan) -> dict[str, tuple[int, int]]:
    """(column, row) of each node for drawing: columns by breadth-first depth from the
    starting nodes (nodes only a cycle reaches go after the rest), rows in document order."""
    depth: dict[str, int] = {}
    frontier = list(plan.starting_nodes)
    level = 0
    while frontier:
        for node_id in frontier:
            depth.setdefault(node_id, level)
        level += 1
        frontier = [s for n in frontier for s in sorted(plan.downstream(n)) if s not in depth]
    for node_id in plan.nodes:
        depth.setdefault(node_id, level)
    rows: dict[int, int] = {}
    positions = {}
    for node_id in plan.nodes:
        column = depth[node_id]
        positions[node_id] = (column, rows.get(column, 0))
        rows[column] = rows.get(column, 0) + 1
    return positions
