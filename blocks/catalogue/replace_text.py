from blocks.base import Block, BlockSchema, Field


class ReplaceTextBlock(Block):
    name = "replace_text"
    description = "Replaces every `old` in `text` with `new` (plain text, not a pattern)."
    category = "text"

    class Input(BlockSchema):
        text: str
        old: str = Field(min_length=1, description="Text to find")
        new: str = Field(default="", description="Text to put in its place")

    class Output(BlockSchema):
        output: str

    def run(self, data, ctx):
        yield "output", data.text.replace(data.old, data.new)
