"""Sub-graph runs: what `agent_executor` (one child) and `ai_agent` (graphs as tools, several
children at once) ask of the engine through their run context, and what wakes their node
when its children have ended."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import Http404

from blocks.base import BlockError
from blocks.waiting import GraphCall, SubgraphStarted, WaitFor
from credits.services import InsufficientCredits
from graphs.models import Graph, GraphVersion
from graphs.selectors import version_numbered
from graphs.validation import GraphInvalid

from .engine import TERMINAL
from .limits import LimitPassed
from .models import GraphExecution, Wait
from .runs import execution_create
from .waits import ParkingNode, node_park, wait_decide


def subgraph_start(
    node: ParkingNode, *, depth: int, graph_id: str, version: int | None, inputs: dict[str, Any],
) -> None:  # fmt: skip
    """Create the child run of a node (counted in its run tree) and park the node waiting for
    it, in one transaction (the child's end cannot come first), then raise SubgraphStarted;
    BlockError with the reason when it cannot start."""
    with transaction.atomic():
        child = _child_create(node, depth, graph_id, version, inputs, reuse=True)
        node_park(node, WaitFor(Wait.Kind.SUBGRAPH), child_execution_id=child.pk)
    raise SubgraphStarted(child.pk)


def graphs_start(
    node: ParkingNode, *, depth: int, calls: list[GraphCall], state: Any
) -> dict[str, str]:
    """Create one child run per call and, if any started, park the node until all have
    ended, in one transaction; the wait keeps `state` (the block's progress) for its resume.
    Returns why each call that could not start did not (its child's end, for the block)."""
    failed: dict[str, str] = {}
    children: dict[str, str] = {}
    with transaction.atomic():
        for call in calls:
            try:
                with transaction.atomic():
                    child = _child_create(node, depth, call.graph_id, call.version, call.inputs)
                children[call.call_id] = str(child.pk)
            except BlockError as exc:
                failed[call.call_id] = str(exc)
        if children:
            data = {"state": state, "children": children, "failed": failed}
            node_park(node, WaitFor(Wait.Kind.SUBGRAPH, data=data))
    return failed


def child_ended(node_execution_id: int, child_execution_id) -> None:
    """A sub-graph run ended: the pending wait of the node that started it is woken once
    every child it waits for has ended (the last child's end decides; a compare-and-set
    keeps it to one), with each child's end (status, outputs, error)."""
    with transaction.atomic():
        wait = (
            Wait.objects.select_for_update()
            .filter(
                node_execution_id=node_execution_id,
                kind=Wait.Kind.SUBGRAPH,
                status=Wait.State.PENDING,
            )
            .first()
        )
        if wait is None:
            return
        data: dict[str, Any] = wait.data if isinstance(wait.data, dict) else {}
        many = "children" in data
        ids = [str(i) for i in (data["children"].values() if many else [wait.child_execution_id])]
        if str(child_execution_id) not in ids:
            return
        ends = {
            str(row["id"]): {"execution_id": str(row["id"]), **row}
            for row in GraphExecution.objects.filter(pk__in=ids).values(
                "id", "status", "outputs", "error"
            )
        }
        if any(end["status"] not in TERMINAL for end in ends.values()):
            return  # the last child's end decides
        for end in ends.values():
            del end["id"]
        if many:
            children = {call: ends.get(str(child)) for call, child in data["children"].items()}
            for call, error in (data.get("failed") or {}).items():
                children[call] = {"execution_id": None, "status": "FAILED", "outputs": {},
                                  "error": error}  # fmt: skip
            payload = {"state": data["state"], "children": children}
        else:
            payload = ends[str(wait.child_execution_id)]
        wait_decide(wait.pk, Wait.State.WOKEN, payload=payload)


def graph_tool_spec(*, user_id: int, graph_id: str, version: int | None) -> dict[str, Any]:
    """A graph of the user as a tool: its name, description, and its `input` nodes as the
    parameters (names, descriptions, defaults; those without a value are required)."""
    graph = _graph_of(user_id, graph_id)
    found = version_numbered(graph, version)
    if found is None:
        raise BlockError(f"graph {graph_id} has no version {version}")
    return {
        "name": graph.name,
        "description": found.description or f"Runs the graph {graph.name!r}.",
        "parameters": _input_schema(found),
    }


def _input_schema(version: GraphVersion) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required = []
    for node in version.nodes.filter(block="input"):
        name = node.input_default.get("name")
        if not isinstance(name, str) or not name:
            continue
        prop: dict[str, Any] = {}
        if node.input_default.get("description"):
            prop["description"] = str(node.input_default["description"])
        if node.input_default.get("value") is None:
            required.append(name)
        else:
            prop["default"] = node.input_default["value"]
        properties[name] = prop
    return {"type": "object", "properties": properties, "required": required}


def _child_create(
    node: ParkingNode, depth: int, graph_id: str, version: int | None, inputs: dict[str, Any],
    *, reuse: bool = False,
) -> GraphExecution:  # fmt: skip
    if depth + 1 > settings.ENGINE_MAX_DEPTH:
        raise BlockError(
            f"sub-graph depth limit of {settings.ENGINE_MAX_DEPTH} reached "
            "(does the graph run itself?)"
        )
    graph = _graph_of(node.user_id, graph_id)
    user = get_user_model().objects.get(pk=node.user_id)
    try:
        return execution_create(
            user=user,
            graph=graph,
            inputs=inputs,
            version=version,
            parent_node_execution_id=node.id,
            depth=depth + 1,
            reuse_child=reuse,
        )
    except GraphInvalid as exc:
        raise BlockError(f"sub-graph inputs rejected: {exc.problems[0]['message']}") from exc
    except (InsufficientCredits, Http404, LimitPassed) as exc:  # Http404: no such version
        raise BlockError(str(exc)) from exc


def _graph_of(user_id: int, graph_id: str) -> Graph:
    pk = _uuid_or_none(graph_id)
    graph = Graph.objects.filter(pk=pk, owner_id=user_id).first() if pk else None
    if graph is None:
        raise BlockError(f"graph {graph_id} not found")
    return graph


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
