import builtins
from typing import Any

from blocks.base import Block, BlockSchema, Field
from blocks.data import checked_index


class ReplaceListItemBlock(Block):
    name = "replace_list_item"
    description = "A copy of `list` with the item at `index` replaced by `value`."
    category = "data"

    class Input(BlockSchema):
        list: builtins.list[Any] = Field(description="The list")
        index: int = Field(description="0-based; -1 is the last item")
        value: Any = Field(description="The new item")

    class Output(BlockSchema):
        updated_list: builtins.list[Any]
        old_item: Any

    def run(self, data, ctx):
        result = builtins.list(data.list)
        checked_index(result, data.index)
        old = result[data.index]
        result[data.index] = data.value
        yield "updated_list", result
        yield "old_item", old
