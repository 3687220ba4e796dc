"""A graph version as the console draws it: its nodes and links as plain data; the browser
lays them out (dagre, vendored) with loops drawn as back-edges."""

from __future__ import annotations

from typing import Any

from executions.plans import plan_for_version


def graph_picture(version_id: int) -> dict[str, Any]:
    plan = plan_for_version(version_id)
    nodes = [
        {"id": node_id, "block": node.block, "name": _name(node.input_default)}
        for node_id, node in plan.nodes.items()
    ]
    links = [
        {"source": link.source_id, "target": link.sink_id,
         "label": f"{link.source_name} → {link.sink_name}", "static": link.is_static}
        for links in plan.out_links.values()
        for link in links
    ]  # fmt: skip
    return {"nodes": nodes, "links": links}


def _name(defaults: dict[str, Any]) -> str:
    """What an input or output node is called (its `name`), shown under its id."""
    name = defaults.get("name")
    return name if isinstance(name, str) else ""
