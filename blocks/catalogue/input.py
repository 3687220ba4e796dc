from typing import Any

from blocks.base import Block, BlockSchema, Field


class InputBlock(Block):
    """A graph input: the engine replaces `value` with the graph input of the same name."""

    name = "input"
    usable_as_tool = False  # waits, starts runs, meters tokens, or is a graph's edge
    description = "Brings a graph input into the graph under the given name."
    category = "io"
    static_output = True

    class Input(BlockSchema):
        name: str = Field(min_length=1, max_length=200, description="Graph input name")
        value: Any = Field(default=None, description="Default when the run gives no input")
        description: str = ""

    class Output(BlockSchema):
        result: Any

    def run(self, data, ctx):
        if data.value is not None:
            yield "result", data.value
