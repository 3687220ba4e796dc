"""The engine's decisions as plain functions over plain data.

Nothing here touches the database or Celery: readiness, first-in-first-out pairing of values
into waiting executions, pin merging, routing of outputs along links, status transitions and
the final status of a run. The modules around it (runs, claims, recording, propagation,
settling, finishing) apply these decisions to rows.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from blocks.catalogue.webhook_trigger import WEBHOOK_INPUT
from graphs.pins import MISSING, merge_dynamic_pins, parse_pin, pick, pin_base


class Status(StrEnum):
    """Statuses of runs and node executions; members are their strings (rows, SQL, events)."""

    INCOMPLETE = "INCOMPLETE"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    # A node parked without a worker until its wait is decided (waits.py): WAITING for a
    # child run, a timer or an event, REVIEW for a person. A run is REVIEW while only
    # reviews and other waits are left (nothing queued or running).
    WAITING = "WAITING"
    REVIEW = "REVIEW"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


TERMINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})
PARKED = frozenset({Status.WAITING, Status.REVIEW})
# A run not yet ended: it holds its user's slot, a schedule does not overlap it.
UNFINISHED_RUN = (Status.QUEUED, Status.RUNNING, Status.PAUSED, Status.REVIEW)

NODE_TRANSITIONS: dict[str, frozenset[str]] = {
    Status.INCOMPLETE: frozenset({Status.QUEUED, Status.CANCELLED}),
    Status.QUEUED: frozenset({Status.RUNNING, Status.CANCELLED, Status.FAILED}),
    Status.RUNNING: frozenset(
        {Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.WAITING, Status.REVIEW}
    ),
    # Woken: claimed back to RUNNING by a worker, which resumes the block.
    Status.WAITING: frozenset({Status.RUNNING, Status.CANCELLED}),
    Status.REVIEW: frozenset({Status.RUNNING, Status.CANCELLED}),
    Status.COMPLETED: frozenset(),
    Status.FAILED: frozenset(),
    Status.CANCELLED: frozenset(),
}

GRAPH_TRANSITIONS: dict[str, frozenset[str]] = {
    Status.QUEUED: frozenset({Status.RUNNING, Status.FAILED, Status.CANCELLED}),
    Status.RUNNING: frozenset(
        {Status.PAUSED, Status.REVIEW, Status.COMPLETED, Status.FAILED, Status.CANCELLED}
    ),
    Status.PAUSED: frozenset({Status.RUNNING, Status.CANCELLED, Status.FAILED}),
    # Its clock stops, as when paused: a person may take days.
    Status.REVIEW: frozenset({Status.RUNNING, Status.PAUSED, Status.CANCELLED, Status.FAILED}),
    # Terminal, except that resuming a FAILED or CANCELLED run re-opens it.
    Status.COMPLETED: frozenset(),
    Status.FAILED: frozenset({Status.QUEUED}),
    Status.CANCELLED: frozenset({Status.QUEUED}),
}


class InvalidTransition(ValueError):
    pass


def check_transition(transitions: dict[str, frozenset[str]], old: str, new: str) -> None:
    """Raise InvalidTransition unless the table allows `old` -> `new`."""
    if new not in transitions.get(old, frozenset()):
        raise InvalidTransition(f"{old} -> {new} is not an allowed transition")


def sources_for(transitions: dict[str, frozenset[str]], new: str) -> list[str]:
    """The states from which `new` may be reached: the `status__in` of a compare-and-set."""
    return sorted(old for old, targets in transitions.items() if new in targets)


# --- pins (their syntax is the graph document's: graphs/pins.py) ------------------------------


_MISSING = MISSING


def extract_output(source_name: str, pin: str, value: Any) -> Any:
    """What a link reading `source_name` carries when its node yields (`pin`, `value`):
    the value itself, the part of it a path names (`pin_#_key`, `pin_$_N`, nested), or
    _MISSING."""
    if source_name == pin:
        return value
    base, path = parse_pin(source_name)
    if base != pin or not path:
        return _MISSING
    return pick(path, value)


# --- graph plan -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkSpec:
    source_id: str
    source_name: str
    sink_id: str
    sink_name: str
    is_static: bool = False


@dataclass(frozen=True)
class NodeSpec:
    id: str
    block: str
    input_default: dict[str, Any] = field(default_factory=dict)
    timeout: int | None = None  # seconds; None: the block's own


@dataclass
class Plan:
    """A graph version compiled for execution: the lookups every step needs, computed once.

    Versions never change, so a worker keeps plans in memory (executions.plans)."""

    nodes: dict[str, NodeSpec]
    out_links: dict[str, list[LinkSpec]]
    in_links: dict[str, list[LinkSpec]]
    starting_nodes: list[str]
    # The graph's safe mode: sensitive nodes wait for a person's approval (safe_mode.py).
    safe_mode: bool = False

    @classmethod
    def build(
        cls, nodes: Iterable[NodeSpec], links: Iterable[LinkSpec], static_blocks: set[str],
        safe_mode: bool = False,
    ) -> Plan:  # fmt: skip
        node_map = {n.id: n for n in nodes}
        out_links: dict[str, list[LinkSpec]] = {nid: [] for nid in node_map}
        in_links: dict[str, list[LinkSpec]] = {nid: [] for nid in node_map}
        for link in links:
            # Links leaving a block with static output are always static (graphs.md).
            if not link.is_static and node_map[link.source_id].block in static_blocks:
                link = LinkSpec(
                    link.source_id, link.source_name, link.sink_id, link.sink_name, True
                )
            out_links[link.source_id].append(link)
            in_links[link.sink_id].append(link)
        starting = [
            nid for nid, node in node_map.items() if node.block == "input" or not in_links[nid]
        ]
        return cls(node_map, out_links, in_links, starting, safe_mode)

    def linked_pins(self, node_id: str) -> frozenset[str]:
        return frozenset(link.sink_name for link in self.in_links[node_id])

    def static_pins(self, node_id: str) -> frozenset[str]:
        return frozenset(link.sink_name for link in self.in_links[node_id] if link.is_static)

    def downstream(self, node_id: str) -> frozenset[str]:
        return frozenset(link.sink_id for link in self.out_links[node_id])

    def handles_errors(self, node_id: str) -> bool:
        return any(pin_base(link.source_name) == "error" for link in self.out_links[node_id])


def route_outputs(
    plan: Plan, node_id: str, outputs: Iterable[tuple[str, Any]]
) -> Iterator[tuple[LinkSpec, Any]]:
    """Each (link, value) that the yielded (pin, value) pairs send, in yield order."""
    links = plan.out_links[node_id]
    for pin, value in outputs:
        for link in links:
            carried = extract_output(link.source_name, pin, value)
            if carried is not _MISSING:
                yield link, carried


# --- pairing values into waiting executions -------------------------------------------------


@dataclass
class Pending:
    """A node execution still collecting inputs (INCOMPLETE), or a new one (id None)."""

    id: int | None
    inputs: dict[str, Any]
    changed: bool = False


def deliver(pending: list[Pending], pin: str, value: Any, *, static: bool = False) -> list[Pending]:
    """Give `value` for `pin` to the earliest waiting execution lacking that pin, or to a new
    one appended to `pending` (first in, first out). A static value also fills every other
    waiting execution that lacks the pin. Returns the executions it changed."""
    changed: list[Pending] = []
    target = next((p for p in pending if pin not in p.inputs), None)
    if target is None:
        target = Pending(None, {})
        pending.append(target)
    target.inputs[pin] = value
    target.changed = True
    changed.append(target)
    if static:
        for other in pending:
            if pin not in other.inputs:
                other.inputs[pin] = value
                other.changed = True
                changed.append(other)
    return changed


def fill_static(p: Pending, static_values: dict[str, Any]) -> None:
    """A waiting execution takes the last value of each static link it lacks."""
    for pin, value in static_values.items():
        if pin not in p.inputs:
            p.inputs[pin] = value
            p.changed = True


def is_ready(linked_pins: frozenset[str], inputs: dict[str, Any]) -> bool:
    """A node runs when every pin with an incoming link holds a value (defaults do not count)."""
    return all(pin in inputs for pin in linked_pins)


def node_input(defaults: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """The input a node runs with: defaults, overlaid by linked values, dynamic pins merged."""
    return merge_dynamic_pins({**defaults, **inputs})


def starting_input(node: NodeSpec, graph_inputs: dict[str, Any]) -> dict[str, Any]:
    """Input for a starting node: an `input` node takes the graph input of its name, a
    `webhook_trigger` node the delivery that started the run."""
    data = merge_dynamic_pins(dict(node.input_default))
    if node.block == "input" and data.get("name") in graph_inputs:
        data["value"] = graph_inputs[data["name"]]
    if node.block == "webhook_trigger" and WEBHOOK_INPUT in graph_inputs:
        data["delivery"] = graph_inputs[WEBHOOK_INPUT]
    return data


# --- dispatch grouping ----------------------------------------------------------------------


def group_for_fan_in(plan: Plan, ready: list[tuple[Any, str]]) -> list[list[Any]]:
    """Split node executions that became ready together into dispatch groups.

    `ready` is a list of (key, node_id). Executions whose nodes feed a common downstream
    node land in one group (dispatched as a chord whose callback joins them); the others
    stay alone, so branches that share no downstream node never wait for each other.
    Groups keep the order of `ready`."""
    parent = list(range(len(ready)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_feeder: dict[str, int] = {}
    for i, (_, node_id) in enumerate(ready):
        for sink in plan.downstream(node_id):
            j = first_feeder.setdefault(sink, i)
            if j != i:
                parent[find(i)] = find(j)
    groups: dict[int, list[Any]] = {}
    for i, (key, _) in enumerate(ready):
        groups.setdefault(find(i), []).append(key)
    return list(groups.values())


# --- end of a run ---------------------------------------------------------------------------


def awaits_review(active: int, parked: int, reviews: int) -> bool:
    """Whether a running run is only waiting for people: everything still active (queued,
    running, parked, pending joins) is parked, and at least one parked node is a review."""
    return reviews > 0 and 0 < active <= parked


def final_status(unhandled_errors: int) -> str:
    """When nothing is queued or running: FAILED if any node failed with no `error` link."""
    return Status.FAILED if unhandled_errors else Status.COMPLETED


def collect_outputs(output_runs: Iterable[tuple[str, list[Any]]]) -> dict[str, list[Any]]:
    """{name: [values...]} from completed `output` node runs, in the order they ran."""
    outputs: dict[str, list[Any]] = {}
    for name, values in output_runs:
        outputs.setdefault(name, []).extend(values)
    return outputs


# --- what a run must be able to pay before it starts ---------------------------------------


class RunPrice(Protocol):
    @property
    def per_run(self) -> int:  # credits charged before each run of a block
        ...


PriceT = TypeVar("PriceT", bound=RunPrice)


def first_paid_node(plan: Plan, price_of: Callable[[str], PriceT]) -> tuple[str, PriceT] | None:
    """The paid node a run reaches first: breadth-first from the starting nodes, in document
    order within a level. None when every reachable node is free."""
    order = {node_id: i for i, node_id in enumerate(plan.nodes)}
    seen = set(plan.starting_nodes)
    level = sorted(plan.starting_nodes, key=order.__getitem__)
    queue: deque[list[str]] = deque([level])
    while queue:
        level = queue.popleft()
        for node_id in level:
            price = price_of(plan.nodes[node_id].block)
            if price.per_run > 0:
                return node_id, price
        following = sorted(
            {sink for node_id in level for sink in plan.downstream(node_id)} - seen,
            key=order.__getitem__,
        )
        seen.update(following)
        if following:
            queue.append(following)
    return None
