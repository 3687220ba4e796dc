"""Sub-graph runs: what `agent_executor` asks of the engine through its run context."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import Http404

from blocks.base import BlockError, SubgraphStarted, WaitFor
from credits.services import InsufficientCredits
from graphs.models import Graph
from graphs.validation import GraphInvalid

from .limits import LimitPassed
from .models import Wait
from .runs import execution_create
from .waits import ParkingNode, node_park


def subgraph_start(
    node: ParkingNode, *, depth: int, graph_id: str, version: int | None, inputs: dict[str, Any],
) -> None:  # fmt: skip
    """Create the child run of a node (counted in its run tree) and park the node waiting for
    it, in one transaction (the child's end cannot come first), then raise SubgraphStarted;
    BlockError with the reason when it cannot start."""
    user_id = node.user_id
    if depth + 1 > settings.ENGINE_MAX_DEPTH:
        raise BlockError(
            f"sub-graph depth limit of {settings.ENGINE_MAX_DEPTH} reached "
            "(does the graph run itself?)"
        )
    pk = _uuid_or_none(graph_id)
    graph = Graph.objects.filter(pk=pk, owner_id=user_id).first() if pk else None
    if graph is None:
        raise BlockError(f"graph {graph_id} not found")
    user = get_user_model().objects.get(pk=user_id)
    try:
        with transaction.atomic():
            child = execution_create(
                user=user,
                graph=graph,
                inputs=inputs,
                version=version,
                parent_node_execution_id=node.id,
                depth=depth + 1,
            )
            node_park(node, WaitFor(Wait.Kind.SUBGRAPH), child_execution_id=child.pk)
    except GraphInvalid as exc:
        raise BlockError(f"sub-graph inputs rejected: {exc.problems[0]['message']}") from exc
    except (InsufficientCredits, Http404, LimitPassed) as exc:  # Http404: no such version
        raise BlockError(str(exc)) from exc
    raise SubgraphStarted(child.pk)


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
