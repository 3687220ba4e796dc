import math
from typing import Literal

from blocks.base import Block, BlockError, BlockSchema, Field


class CalculatorBlock(Block):
    name = "calculator"
    description = "Arithmetic on two numbers: add, subtract, multiply, divide, power."
    category = "logic"

    class Input(BlockSchema):
        operation: Literal["add", "subtract", "multiply", "divide", "power"] = "add"
        a: float = Field(description="First operand")
        b: float = Field(description="Second operand")
        round_result: bool = Field(default=False, description="Round to the nearest integer")

    class Output(BlockSchema):
        result: float

    def run(self, data, ctx):
        a, b = data.a, data.b
        try:
            if data.operation == "add":
                result = a + b
            elif data.operation == "subtract":
                result = a - b
            elif data.operation == "multiply":
                result = a * b
            elif data.operation == "divide":
                if b == 0:
                    raise BlockError("division by zero")
                result = a / b
            else:
                result = math.pow(a, b)
        except (OverflowError, ValueError) as exc:
            raise BlockError(f"{data.operation} failed: {exc}") from exc
        if not math.isfinite(result):
            raise BlockError(f"{data.operation} gave a result that is not a finite number")
        yield "result", round(result) if data.round_result else result
