from typing import Any

from blocks.base import Block, BlockSchema, Field


class AddToDictBlock(Block):
    name = "add_to_dict"
    description = "A copy of `dictionary` with `key` set to `value` and `entries` merged in."
    category = "data"

    class Input(BlockSchema):
        dictionary: dict[str, Any] = Field(default_factory=dict, description="Start from this")
        key: str | None = Field(default=None, description="Key to set (with `value`)")
        value: Any = None
        entries: dict[str, Any] = Field(default_factory=dict, description="More keys to set")

    class Output(BlockSchema):
        updated_dictionary: dict[str, Any]

    def run(self, data, ctx):
        result = dict(data.dictionary)
        if data.key is not None:
            result[data.key] = data.value
        result.update(data.entries)
        yield "updated_dictionary", result
