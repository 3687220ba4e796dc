import operator as op
from typing import Any, Literal

from blocks.base import Block, BlockError, BlockSchema, Field

OPERATORS = {"==": op.eq, "!=": op.ne, ">": op.gt, "<": op.lt, ">=": op.ge, "<=": op.le}


class ConditionBlock(Block):
    """Compares two values and sends the result down exactly one branch."""

    name = "condition"
    description = "Compares value1 with value2; yields on yes_output or no_output."
    category = "logic"

    class Input(BlockSchema):
        value1: Any = Field(description="Left operand")
        operator: Literal["==", "!=", ">", "<", ">=", "<="] = "=="
        value2: Any = Field(description="Right operand")
        yes_value: Any = Field(default=None, description="Sent on yes_output (default value1)")
        no_value: Any = Field(default=None, description="Sent on no_output (default value1)")

    class Output(BlockSchema):
        result: bool
        yes_output: Any
        no_output: Any

    def run(self, data, ctx):
        try:
            result = bool(OPERATORS[data.operator](data.value1, data.value2))
        except TypeError as exc:
            raise BlockError(
                f"cannot compare {data.value1!r} {data.operator} {data.value2!r}"
            ) from exc
        yield "result", result
        if result:
            yield "yes_output", data.yes_value if data.yes_value is not None else data.value1
        else:
            yield "no_output", data.no_value if data.no_value is not None else data.value1
