from typing import Any

from blocks.base import Block, BlockSchema, Field
from blocks.patterns import compiled, search


class MatchTextPatternBlock(Block):
    """Routes `data` by whether a regular expression matches the text."""

    name = "match_text_pattern"
    description = "Sends `data` on `positive` if `match` is found in `text`, else on `negative`."
    category = "text"

    class Input(BlockSchema):
        text: Any = Field(description="Text to search (other values are matched as JSON text)")
        match: str = Field(max_length=1000, description="Regular expression")
        data: Any = Field(default=None, description="Sent on the branch taken (default text)")
        case_sensitive: bool = True
        dot_all: bool = Field(default=True, description="`.` also matches newlines")

    class Output(BlockSchema):
        positive: Any
        negative: Any

    def run(self, data, ctx):
        pattern = compiled(data.match, case_sensitive=data.case_sensitive, dot_all=data.dot_all)
        value = data.data if data.data is not None else data.text
        if search(pattern, data.text) is not None:
            yield "positive", value
        else:
            yield "negative", value
