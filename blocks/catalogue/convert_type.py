import json
from typing import Any, Literal

from blocks.base import Block, BlockError, BlockSchema, Field

TRUE = {"true", "yes", "y", "1", "on"}
FALSE = {"false", "no", "n", "0", "off", ""}


class ConvertTypeBlock(Block):
    name = "convert_type"
    description = "Converts `value` to a string, number, boolean, list or dict."
    category = "data"

    class Input(BlockSchema):
        value: Any
        type: Literal["string", "number", "boolean", "list", "dict"] = Field(
            description="What to convert to"
        )

    class Output(BlockSchema):
        value: Any

    def run(self, data, ctx):
        try:
            yield "value", CONVERTERS[data.type](data.value)
        except (TypeError, ValueError) as exc:
            raise BlockError(f"cannot convert {data.value!r} to {data.type}: {exc}") from exc


def _string(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _number(value: Any) -> int | float:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    number = float(str(value).strip())
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError("not a finite number")
    return int(number) if number.is_integer() and "." not in str(value) else number


def _boolean(value: Any) -> bool:
    if isinstance(value, str):
        text = value.strip().lower()
        if text in TRUE:
            return True
        if text in FALSE:
            return False
        raise ValueError("not a recognised truth value")
    return bool(value)


def _list(value: Any) -> list:
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return [value]  # plain text: a list of one
        return parsed if isinstance(parsed, list) else [parsed]
    if isinstance(value, dict):
        return [[k, v] for k, v in value.items()]
    return [value]


def _dict(value: Any) -> dict:
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        parsed = json.loads(value)
        if isinstance(parsed, dict):
            return parsed
        raise ValueError("the text is not a JSON object")
    if isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 for p in value):
        return {str(k): v for k, v in value}
    raise ValueError("only objects, JSON text and [key, value] pairs convert to a dict")


CONVERTERS = {
    "string": _string,
    "number": _number,
    "boolean": _boolean,
    "list": _list,
    "dict": _dict,
}
