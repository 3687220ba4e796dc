from typing import Any

from blocks.base import Block, BlockSchema, Field


class CreateDictBlock(Block):
    name = "create_dict"
    description = "Yields `values` as a dictionary (build it from links with values_#_KEY)."
    category = "data"

    class Input(BlockSchema):
        values: dict[str, Any] = Field(description="Its entries; links set values_#_KEY")

    class Output(BlockSchema):
        dictionary: dict[str, Any]

    def run(self, data, ctx):
        yield "dictionary", dict(data.values)
