from typing import Any

from blocks.base import Block, BlockSchema, Field
from blocks.input_types import InputType


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
        type: InputType = Field(
            default="any",
            description="What the input takes: checked (and coerced where unambiguous, e.g. "
            '"42" for an integer) when a run starts; shown in the graph\'s input_schema',
        )
        options: list[Any] | None = Field(
            default=None, description="For type choice: the values to choose among"
        )

    class Output(BlockSchema):
        result: Any

    def run(self, data, ctx):
        if data.value is not None:
            yield "result", data.value
