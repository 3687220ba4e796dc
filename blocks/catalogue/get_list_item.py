import builtins
from typing import Any

from blocks.base import Block, BlockSchema, Field
from blocks.data import checked_index


class GetListItemBlock(Block):
    name = "get_list_item"
    description = "The item at `index` (negative counts from the end)."
    category = "data"

    class Input(BlockSchema):
        list: builtins.list[Any] = Field(description="The list")
        index: int = Field(description="0-based; -1 is the last item")

    class Output(BlockSchema):
        item: Any

    def run(self, data, ctx):
        checked_index(data.list, data.index)
        yield "item", data.list[data.index]
