"""Sub-graph runs: what `agent_executor` asks of the engine through its run context."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import Http404

from blocks.base import BlockError, SubgraphStarted
from credits.services import InsufficientCredits
from graphs.models import Graph
from graphs.validation import GraphInvalid

from .limits import LimitPassed
from .runs import execution_create


def subgraph_start(
    *, user_id: int, node_execution_id: int, depth: int, graph_id: str, version: int | None,
    inputs: dict[str, Any],
) -> None:  # fmt: skip
    """Create the child run of a node (counted in its run tree) and raise SubgraphStarted;
    BlockError with the reason when it cannot start."""
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
        child = execution_create(
            user=user,
            graph=graph,
            inputs=inputs,
            version=version,
            parent_node_execution_id=node_execution_id,
            depth=depth + 1,
        )
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
