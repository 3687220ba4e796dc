import builtins
from typing import Any

from blocks.base import Block, BlockError, BlockSchema, Field


class AddToListBlock(Block):
    name = "add_to_list"
    description = "A copy of `list` with `entry` (and `entries`) added, at `position` or the end."
    category = "data"

    class Input(BlockSchema):
        # `list` is the pin's name, so the type is spelled builtins.list in this class.
        list: builtins.list[Any] = Field(default_factory=builtins.list, description="Start")
        entry: Any = Field(default=None, description="One value to add")
        entries: builtins.list[Any] = Field(
            default_factory=builtins.list, description="More values to add"
        )
        position: int | None = Field(default=None, description="Index to insert at (default end)")

    class Output(BlockSchema):
        updated_list: builtins.list[Any]

    def run(self, data, ctx):
        added = ([data.entry] if data.entry is not None else []) + builtins.list(data.entries)
        result = builtins.list(data.list)
        if data.position is None:
            result.extend(added)
        elif -len(result) - 1 <= data.position <= len(result):
            at = data.position if data.position >= 0 else len(result) + 1 + data.position
            result[at:at] = added
        else:
            raise BlockError(f"position {data.position} is outside a list of {len(result)}")
        yield "updated_list", result
