"""Runs another graph of the same user as a child run of this one."""

import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import Http404

from blocks.base import Block, BlockError, BlockSchema, Field


class AgentExecutorBlock(Block):
    """Starts the child run and leaves: the node waits without holding a worker, and the
    child's end completes it, re-yielding each child output value on the pin of that name.
    Stopping the parent stops the child; the child's cost counts in the parent's stats."""

    name = "agent_executor"
    description = "Runs another of your graphs as a sub-graph; outputs come out by name."
    category = "agent"
    # Waiting for the child holds no worker; the node's time limit still bounds the wait.
    timeout = 3600
    # Credentials in `inputs` reach the child sealed; the child's worker resolves them.
    hands_on_credentials = True

    class Input(BlockSchema):
        graph_id: str = Field(min_length=1, max_length=64, description="The graph to run")
        graph_version: int | None = Field(default=None, ge=1, description="Default: latest")
        inputs: dict[str, Any] = Field(default_factory=dict, description="Its graph inputs")

    class Output(BlockSchema):
        pass

    @classmethod
    def dynamic_outputs(cls) -> bool:
        return True

    def run(self, data, ctx):
        # Imported here: the engine imports the block registry, not the other way round.
        from credits.services import InsufficientCredits
        from executions.limits import LimitPassed
        from executions.node_runs import SubgraphStarted
        from executions.services import execution_create
        from graphs.models import Graph
        from graphs.validation import GraphInvalid

        if ctx.depth + 1 > settings.ENGINE_MAX_DEPTH:
            raise BlockError(
                f"sub-graph depth limit of {settings.ENGINE_MAX_DEPTH} reached "
                "(does the graph run itself?)"
            )
        graph = Graph.objects.filter(pk=_uuid_or_none(data.graph_id), owner_id=ctx.user_id).first()
        if graph is None:
            raise BlockError(f"graph {data.graph_id} not found")
        user = get_user_model().objects.get(pk=ctx.user_id)
        try:
            child = execution_create(
                user=user,
                graph=graph,
                inputs=data.inputs,
                version=data.graph_version,
                parent_node_execution_id=ctx.node_execution_id,
                depth=ctx.depth + 1,
            )
        except GraphInvalid as exc:
            raise BlockError(f"sub-graph inputs rejected: {exc.problems[0]['message']}") from exc
        except (InsufficientCredits, Http404, LimitPassed) as exc:  # Http404: no version
            raise BlockError(str(exc)) from exc
        raise SubgraphStarted(child.pk)
        yield  # a generator, like every block


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
