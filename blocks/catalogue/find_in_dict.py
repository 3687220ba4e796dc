from typing import Any

from blocks.base import Block, BlockSchema, Field


class FindInDictBlock(Block):
    """Looks a key up in a dict (or an index in a list); a dotted key walks nested values."""

    name = "find_in_dict"
    description = "Yields input[key] on `output`, or the input on `missing` if there is none."
    category = "data"

    class Input(BlockSchema):
        input: Any = Field(description="A dict or a list")
        key: str | int = Field(description="Key or index; 'a.b.0' walks nested values")

    class Output(BlockSchema):
        output: Any
        missing: Any

    def run(self, data, ctx):
        value = data.input
        path = data.key.split(".") if isinstance(data.key, str) else [data.key]
        for part in path:
            if isinstance(value, dict) and part in value:
                value = value[part]
            elif isinstance(value, dict) and str(part) in value:
                value = value[str(part)]
            elif isinstance(value, list) and _index(part, len(value)) is not None:
                value = value[_index(part, len(value))]
            else:
                yield "missing", data.input
                return
        yield "output", value


def _index(part, length: int) -> int | None:
    try:
        i = int(part)
    except (TypeError, ValueError):
        return None
    return i if -length <= i < length else None
