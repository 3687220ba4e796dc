from typing import Any

from django.conf import settings

from blocks.base import Block, BlockError, BlockSchema, Field


class StepThroughItemsBlock(Block):
    """Fans out: one (item, key) pair per element, so downstream runs once per element."""

    name = "step_through_items"
    description = "Yields each element of a list (key = index) or dict (key = dict key)."
    category = "logic"

    class Input(BlockSchema):
        items: list[Any] | dict[str, Any] = Field(description="The list or dict to iterate")

    class Output(BlockSchema):
        item: Any
        key: Any

    def run(self, data, ctx):
        # Each element starts at least one node execution downstream: a list longer than a
        # run may create is refused before anything is yielded.
        cap = settings.ENGINE_MAX_NODE_EXECUTIONS
        if len(data.items) > cap:
            raise BlockError(
                f"{len(data.items)} items are more than a run may create node executions for "
                f"({cap}, ENGINE_MAX_NODE_EXECUTIONS)"
            )
        pairs = data.items.items() if isinstance(data.items, dict) else enumerate(data.items)
        for key, item in pairs:
            yield "item", item
            yield "key", key
