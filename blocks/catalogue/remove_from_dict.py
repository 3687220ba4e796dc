from typing import Any

from blocks.base import Block, BlockError, BlockSchema, Field


class RemoveFromDictBlock(Block):
    name = "remove_from_dict"
    description = "A copy of `dictionary` without `key` (and the value it had, if asked)."
    category = "data"

    class Input(BlockSchema):
        dictionary: dict[str, Any] = Field(description="The dictionary")
        key: str | int = Field(description="The key to remove")
        return_value: bool = Field(default=False, description="Also yield `removed_value`")

    class Output(BlockSchema):
        updated_dictionary: dict[str, Any]
        removed_value: Any

    def run(self, data, ctx):
        result = dict(data.dictionary)
        key = str(data.key)  # JSON objects have text keys
        if key not in result:
            raise BlockError(f"key {key!r} is not in the dictionary")
        removed = result.pop(key)
        yield "updated_dictionary", result
        if data.return_value:
            yield "removed_value", removed
