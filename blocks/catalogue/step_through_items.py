from typing import Any

from blocks.base import Block, BlockSchema, Field


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
        pairs = data.items.items() if isinstance(data.items, dict) else enumerate(data.items)
        for key, item in pairs:
            yield "item", item
            yield "key", key
