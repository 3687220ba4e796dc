import json
from typing import Any

from blocks.base import Block, BlockError, BlockSchema, Field


class ConcatenateListsBlock(Block):
    name = "concatenate_lists"
    description = "One list of the items of `lists` in order; duplicates or nulls dropped if asked."
    category = "data"

    class Input(BlockSchema):
        lists: list[Any] = Field(description="The lists (null ones are skipped); lists_$_N")
        deduplicate: bool = Field(default=False, description="Keep the first of equal items")
        remove_none: bool = Field(default=False, description="Drop null items")

    class Output(BlockSchema):
        concatenated_list: list[Any]
        length: int

    def run(self, data, ctx):
        result: list[Any] = []
        for number, part in enumerate(data.lists):
            if part is None:
                continue
            if not isinstance(part, list):
                raise BlockError(f"lists[{number}] is a {type(part).__name__}, not a list")
            result.extend(part)
        if data.remove_none:
            result = [item for item in result if item is not None]
        if data.deduplicate:
            seen: set[str] = set()
            kept = []
            for item in result:
                # JSON values compare by their canonical text: 1 and true stay apart.
                key = json.dumps(item, sort_keys=True)
                if key not in seen:
                    seen.add(key)
                    kept.append(item)
            result = kept
        yield "concatenated_list", result
        yield "length", len(result)
