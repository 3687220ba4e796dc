import builtins
from typing import Any

from blocks.base import Block, BlockSchema, Field


class CreateListBlock(Block):
    name = "create_list"
    description = (
        "Yields `values` as a list (build it from links with values_$_N), or in pieces of at "
        "most `max_size` items, one value per piece."
    )
    category = "data"

    class Input(BlockSchema):
        values: builtins.list[Any] = Field(description="Its items; links set values_$_N")
        max_size: int | None = Field(
            default=None, ge=1, description="Yield pieces of at most this many items"
        )

    class Output(BlockSchema):
        list: builtins.list[Any]

    def run(self, data, ctx):
        items = builtins.list(data.values)
        if data.max_size is None or not items:
            yield "list", items
            return
        for start in range(0, len(items), data.max_size):
            yield "list", items[start : start + data.max_size]
