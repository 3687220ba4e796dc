from blocks.base import Block, BlockSchema, Field


class SplitTextBlock(Block):
    name = "split_text"
    description = "Splits `text` at each `delimiter` into a list."
    category = "text"

    class Input(BlockSchema):
        text: str = Field(description="Text to split")
        delimiter: str = Field(default=",", min_length=1, description="Where to split")
        strip: bool = Field(default=True, description="Strip whitespace around each part")
        keep_empty: bool = Field(default=False, description="Keep empty parts")

    class Output(BlockSchema):
        texts: list[str]

    def run(self, data, ctx):
        parts = data.text.split(data.delimiter)
        if data.strip:
            parts = [p.strip() for p in parts]
        if not data.keep_empty:
            parts = [p for p in parts if p]
        yield "texts", parts
