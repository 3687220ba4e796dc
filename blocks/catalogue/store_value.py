from typing import Any

from blocks.base import Block, BlockSchema, Field


class StoreValueBlock(Block):
    """Holds a value for reuse: its output is static, so every later run downstream sees it."""

    name = "store_value"
    description = "Passes `data` when given, else `input`; the output is static."
    static_output = True

    class Input(BlockSchema):
        input: Any = Field(description="Triggers the block; output when `data` is empty")
        data: Any = Field(default=None, description="Value to store instead of `input`")

    class Output(BlockSchema):
        output: Any

    def run(self, data, ctx):
        yield "output", data.data if data.data is not None else data.input
