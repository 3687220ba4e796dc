import builtins
from typing import Any

from blocks.base import Block, BlockSchema, Field


class FindInListBlock(Block):
    name = "find_in_list"
    description = (
        "The index of the first item equal to `value` and found=true; else found=false and "
        "the value on `not_found_value`."
    )
    category = "data"

    class Input(BlockSchema):
        list: builtins.list[Any] = Field(description="The list to search")
        value: Any = Field(description="The value to look for")

    class Output(BlockSchema):
        index: int
        found: bool
        not_found_value: Any

    def run(self, data, ctx):
        try:
            index = data.list.index(data.value)
        except ValueError:
            yield "found", False
            yield "not_found_value", data.value
            return
        yield "index", index
        yield "found", True
