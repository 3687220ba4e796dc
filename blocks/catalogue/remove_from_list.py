import builtins
from typing import Any

from blocks.base import Block, BlockError, BlockSchema, Field
from blocks.data import checked_index


class RemoveFromListBlock(Block):
    name = "remove_from_list"
    description = "A copy of `list` without the item at `index`, or the first equal to `value`."
    category = "data"

    class Input(BlockSchema):
        list: builtins.list[Any] = Field(description="The list")
        value: Any = Field(default=None, description="Remove the first item equal to it")
        index: int | None = Field(default=None, description="Or the item here (-1: the last)")
        return_item: bool = Field(default=False, description="Also yield `removed_item`")

    class Output(BlockSchema):
        updated_list: builtins.list[Any]
        removed_item: Any

    def run(self, data, ctx):
        result = builtins.list(data.list)
        if data.index is not None:
            checked_index(result, data.index)
            removed = result.pop(data.index)
        elif data.value is not None and data.value in result:
            result.remove(data.value)
            removed = data.value
        elif data.value is not None:
            raise BlockError(f"{data.value!r} is not in the list")
        else:
            raise BlockError("give `index` or `value`: which item to remove")
        yield "updated_list", result
        if data.return_item:
            yield "removed_item", removed
