"""Runs another graph of the same user as a child run of this one."""

from typing import Any

from blocks.base import Block, BlockSchema, Field


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
        ctx.start_subgraph(data.graph_id, data.graph_version, data.inputs)
        yield  # not reached (the node waits for the child); a generator, like every block
