from typing import Any

from blocks.base import Block, BlockSchema, Field


class DictIsEmptyBlock(Block):
    name = "dict_is_empty"
    description = "Whether `dictionary` has no entries."
    category = "data"

    class Input(BlockSchema):
        dictionary: dict[str, Any] = Field(description="The dictionary")

    class Output(BlockSchema):
        is_empty: bool

    def run(self, data, ctx):
        yield "is_empty", not data.dictionary
