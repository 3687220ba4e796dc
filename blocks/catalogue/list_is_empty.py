import builtins
from typing import Any

from blocks.base import Block, BlockSchema, Field


class ListIsEmptyBlock(Block):
    name = "list_is_empty"
    description = "Whether `list` has no items."
    category = "data"

    class Input(BlockSchema):
        list: builtins.list[Any] = Field(description="The list")

    class Output(BlockSchema):
        is_empty: bool

    def run(self, data, ctx):
        yield "is_empty", not data.list
