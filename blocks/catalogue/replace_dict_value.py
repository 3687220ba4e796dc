from typing import Any

from blocks.base import Block, BlockError, BlockSchema, Field


class ReplaceDictValueBlock(Block):
    name = "replace_dict_value"
    description = "A copy of `dictionary` with the value of an existing `key` replaced."
    category = "data"

    class Input(BlockSchema):
        dictionary: dict[str, Any] = Field(description="The dictionary")
        key: str | int = Field(description="A key it has")
        value: Any = Field(description="Its new value")

    class Output(BlockSchema):
        updated_dictionary: dict[str, Any]
        old_value: Any

    def run(self, data, ctx):
        result = dict(data.dictionary)
        key = str(data.key)
        if key not in result:
            raise BlockError(f"key {key!r} is not in the dictionary")
        old = result[key]
        result[key] = data.value
        yield "updated_dictionary", result
        yield "old_value", old
