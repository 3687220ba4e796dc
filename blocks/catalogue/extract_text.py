from typing import Any

from blocks.base import Block, BlockError, BlockSchema, Field
from blocks.patterns import as_text, compiled, finditer


class ExtractTextBlock(Block):
    """Pulls a group of a regular expression's matches out of a text."""

    name = "extract_text"
    description = "Yields `group` of the first (or every, with find_all) match on `positive`."
    category = "text"

    class Input(BlockSchema):
        text: Any = Field(description="Text to search")
        pattern: str = Field(max_length=1000, description="Regular expression")
        group: int | str = Field(default=0, description="Group number or name (0: whole match)")
        case_sensitive: bool = True
        dot_all: bool = True
        find_all: bool = Field(default=False, description="Yield every match, not the first")

    class Output(BlockSchema):
        positive: str = Field(description="The extracted text (once per match with find_all)")
        negative: str = Field(description="The input text, when nothing matched")

    def run(self, data, ctx):
        pattern = compiled(data.pattern, case_sensitive=data.case_sensitive, dot_all=data.dot_all)
        text = as_text(data.text)
        found = False
        for match in finditer(pattern, text):
            try:
                piece = match.group(data.group)
            except IndexError as exc:  # no such group number or name
                raise BlockError(f"the pattern has no group {data.group!r}") from exc
            found = True
            yield "positive", piece or ""
            if not data.find_all:
                break
        if not found:
            yield "negative", text
