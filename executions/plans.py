"""Compiled graph versions, cached per process: versions never change once saved."""

from functools import lru_cache

from blocks.registry import all_blocks
from graphs.models import Link, Node

from .engine import LinkSpec, NodeSpec, Plan


@lru_cache(maxsize=256)
def plan_for_version(version_id: int) -> Plan:
    nodes = [
        NodeSpec(node_id, block, defaults, timeout)
        for node_id, block, defaults, timeout in Node.objects.filter(graph_version_id=version_id)
        .order_by("position")
        .values_list("node_id", "block", "input_default", "timeout")
    ]
    links = [
        LinkSpec(*row)
        for row in Link.objects.filter(graph_version_id=version_id)
        .order_by("position")
        .values_list("source_id", "source_name", "sink_id", "sink_name", "is_static")
    ]
    static_blocks = {cls.name for cls in all_blocks() if cls.static_output}
    return Plan.build(nodes, links, static_blocks)
