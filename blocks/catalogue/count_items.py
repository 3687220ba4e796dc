from typing import Any

from blocks.base import Block, BlockError, BlockSchema, Field


class CountItemsBlock(Block):
    name = "count_items"
    description = "How many items a list or dictionary has, or characters a text."
    category = "data"

    class Input(BlockSchema):
        collection: Any = Field(description="A list, a dictionary or a text")

    class Output(BlockSchema):
        count: int

    def run(self, data, ctx):
        if not isinstance(data.collection, list | dict | str):
            kind = "null" if data.collection is None else type(data.collection).__name__
            raise BlockError(f"a {kind} has no items to count")
        yield "count", len(data.collection)
