from typing import Any

from blocks.base import Block, BlockSchema, Field
from blocks.templating import render


class TextTemplateBlock(Block):
    name = "text_template"
    description = "Renders a Jinja2 template with the entries of `values` (sandboxed)."
    category = "text"

    class Input(BlockSchema):
        values: dict[str, Any] = Field(default_factory=dict, description="Template variables")
        format: str = Field(description="Jinja2 template, e.g. 'Hello {{ name }}!'")

    class Output(BlockSchema):
        output: str

    def run(self, data, ctx):
        yield "output", render(data.format, data.values)
