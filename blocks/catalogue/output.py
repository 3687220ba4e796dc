from typing import Any

from blocks.base import Block, BlockSchema, Field
from blocks.templating import render


class OutputBlock(Block):
    """A graph output: every value it yields is collected in the run's outputs[name]."""

    name = "output"
    usable_as_tool = False  # waits, starts runs, meters tokens, or is a graph's edge
    description = "Records a value as a graph output, optionally formatted with a template."
    category = "io"

    class Input(BlockSchema):
        name: str = Field(min_length=1, max_length=200, description="Graph output name")
        value: Any = Field(description="The value to output")
        format: str | None = Field(default=None, description="Jinja2 template using {{ value }}")
        description: str = Field(default="", description="Shown in the graph's output_schema")

    class Output(BlockSchema):
        output: Any

    def run(self, data, ctx):
        if data.format:
            yield "output", render(data.format, {"value": data.value})
        else:
            yield "output", data.value
