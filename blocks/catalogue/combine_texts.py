from typing import Any

from blocks.base import Block, BlockSchema, Field


class CombineTextsBlock(Block):
    name = "combine_texts"
    description = "Joins `input` (a list of texts) with `delimiter` between them."
    category = "text"

    class Input(BlockSchema):
        input: list[Any] = Field(description="Texts to join (other values as their text)")
        delimiter: str = Field(default="", description="Put between each two texts")

    class Output(BlockSchema):
        output: str

    def run(self, data, ctx):
        yield (
            "output",
            data.delimiter.join(
                v if isinstance(v, str) else str(v) for v in data.input if v is not None
            ),
        )
