"""Runs another graph of the same user as a child run of this one."""

from typing import Any

from blocks.base import Block, BlockError, BlockSchema, Field


class AgentExecutorBlock(Block):
    """Starts the child run and parks: the node waits without holding a worker, and the
    child's end resumes it, re-yielding each child output value on the pin of that name (or
    failing with the child's error). Stopping the parent stops the child; the child's cost
    counts in the parent's stats."""

    name = "agent_executor"
    usable_as_tool = False  # waits, starts runs, meters tokens, or is a graph's edge
    description = "Runs another of your graphs as a sub-graph; outputs come out by name."
    category = "agent"
    # Bounds starting the child; the wait for it is bounded by the child's own time limit.
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

    def resume(self, data, wake, ctx):
        child = wake.payload or {}
        if child.get("status") != "COMPLETED":
            raise BlockError(
                f"sub-graph run {child.get('execution_id')} ended {child.get('status')}: "
                f"{child.get('error') or ''}"
            )
        for name, values in (child.get("outputs") or {}).items():
            for value in values:
                yield name, value
