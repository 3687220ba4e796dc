"""Compiled graph versions, cached per process: versions never change once saved.

The cache is bounded by the size of what it holds (nodes plus links of every cached plan,
PLAN_CACHE_ITEMS), not by a count: a few plans of 20,000-node graphs take as much memory
as thousands of small ones. Least recently used plans go first."""

from __future__ import annotations

import threading
from collections import OrderedDict

from django.conf import settings

from blocks.registry import all_blocks
from graphs.models import GraphVersion, Link, Node

from .engine import LinkSpec, NodeSpec, Plan


class _SizedCache:
    def __init__(self):
        self._plans: OrderedDict[int, tuple[Plan, int]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()  # the ASGI server's threads share it

    def get(self, version_id: int) -> Plan | None:
        with self._lock:
            entry = self._plans.get(version_id)
            if entry is None:
                return None
            self._plans.move_to_end(version_id)
            return entry[0]

    def put(self, version_id: int, plan: Plan) -> None:
        size = len(plan.nodes) + sum(len(links) for links in plan.out_links.values())
        budget = settings.PLAN_CACHE_ITEMS
        with self._lock:
            if version_id in self._plans:
                return
            self._plans[version_id] = (plan, size)
            self._size += size
            while self._size > budget and len(self._plans) > 1:
                _, (_, dropped) = self._plans.popitem(last=False)
                self._size -= dropped

    def clear(self) -> None:
        with self._lock:
            self._plans.clear()
            self._size = 0


_cache = _SizedCache()


def plan_for_version(version_id: int) -> Plan:
    plan = _cache.get(version_id)
    if plan is None:
        plan = _compile(version_id)
        _cache.put(version_id, plan)
    return plan


def _compile(version_id: int) -> Plan:
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
    safe_mode = GraphVersion.objects.filter(pk=version_id).values_list("safe_mode", flat=True)
    return Plan.build(nodes, links, static_blocks, safe_mode=bool(safe_mode and safe_mode[0]))
