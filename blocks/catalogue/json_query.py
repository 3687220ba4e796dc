from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

from blocks.base import Block, BlockError, BlockSchema, Field


class JsonQueryBlock(Block):
    """JMESPath (jmespath.org) through the `jmespath` package: a pure function of the data."""

    name = "json_query"
    description = (
        "Evaluates a JMESPath `query` over `data`: its value on `result`, or the data on "
        "`missing` when the query finds nothing (null)."
    )
    category = "data"

    class Input(BlockSchema):
        data: Any = Field(description="Any JSON value")
        query: str = Field(min_length=1, description="A JMESPath expression, e.g. items[?ok].id")

    class Output(BlockSchema):
        result: Any
        missing: Any

    def run(self, data, ctx):
        try:
            found = jmespath.search(data.query, data.data)
        except JMESPathError as exc:
            raise BlockError(f"invalid JMESPath query: {exc}") from exc
        if found is None:
            yield "missing", data.data
        else:
            yield "result", found
