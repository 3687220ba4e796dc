"""The types an `input` node may declare (its `type` and `options`), as plain functions: the
JSON Schema each type shows clients (a graph's input_schema), and how a value given for it
is checked and, where that is unambiguous, coerced ("42" for an integer is 42). Used at save
for an input's default and at execute for the run's inputs."""

from __future__ import annotations

import math
import uuid
from datetime import date, datetime, time
from typing import Any, Literal

InputType = Literal[
    "any", "short_text", "long_text", "number", "integer", "boolean", "date", "time",
    "date_time", "choice", "file",
]  # fmt: skip
SHORT_TEXT_MAX = 1000
FILE_KEY = "$file"


class InputValueInvalid(ValueError):
    """Why a value does not fit an input's type (the message names what was expected)."""


def type_schema(kind: str, options: list[Any] | None = None) -> dict[str, Any]:
    """The JSON Schema of a value of this input type."""
    schemas: dict[str, dict[str, Any]] = {
        "any": {},
        "short_text": {"type": "string", "maxLength": SHORT_TEXT_MAX, "pattern": "^[^\\n]*$"},
        "long_text": {"type": "string"},
        "number": {"type": "number"},
        "integer": {"type": "integer"},
        "boolean": {"type": "boolean"},
        "date": {"type": "string", "format": "date"},
        "time": {"type": "string", "format": "time"},
        "date_time": {"type": "string", "format": "date-time"},
        "choice": {"enum": list(options or [])},
        "file": {
            "type": "object",
            "properties": {FILE_KEY: {"type": "string", "format": "uuid"}},
            "required": [FILE_KEY],
            "additionalProperties": False,
            "description": 'an uploaded file: {"$file": "<id>"} (POST /api/files/)',
        },
    }
    return schemas[kind]


def coerce(kind: str, value: Any, options: list[Any] | None = None) -> Any:
    """`value` as an input of this type takes it, or InputValueInvalid."""
    return _COERCERS[kind](value, options)


def _any(value, options):
    return value


def _text(value, options, *, short: bool):
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InputValueInvalid(f"expected text, got {_kind(value)}")
    if short and ("\n" in value or len(value) > SHORT_TEXT_MAX):
        raise InputValueInvalid(f"expected one line of at most {SHORT_TEXT_MAX} characters")
    return value


def _number(value, options):
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise InputValueInvalid(f"expected a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputValueInvalid(f"expected a number, got {_kind(value)}")
    return value


def _integer(value, options):
    if isinstance(value, str):
        text = value.strip()
        if not (text.removeprefix("-").isascii() and text.removeprefix("-").isdigit()):
            raise InputValueInvalid(f"expected an integer, got {value!r}")
        return int(text)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputValueInvalid(f"expected an integer, got {_kind(value)}")
    return value


def _boolean(value, options):
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if not isinstance(value, bool):
        raise InputValueInvalid(f"expected true or false, got {_kind(value)}")
    return value


def _iso(parse, label: str):
    def check(value, options):
        if not isinstance(value, str):
            raise InputValueInvalid(f"expected {label}, got {_kind(value)}")
        try:
            return parse(value.strip()).isoformat()
        except ValueError:
            raise InputValueInvalid(f"expected {label}, got {value!r}") from None

    return check


def _choice(value, options):
    if value not in (options or []):
        shown = ", ".join(repr(o) for o in options or []) or "none"
        raise InputValueInvalid(f"expected one of {shown}, got {value!r}")
    return value


def _file(value, options):
    if isinstance(value, str):
        value = {FILE_KEY: value}
    if not (isinstance(value, dict) and set(value) == {FILE_KEY}):
        raise InputValueInvalid('expected a file reference {"$file": "<id>"}')
    try:
        return {FILE_KEY: str(uuid.UUID(str(value[FILE_KEY])))}
    except ValueError:
        raise InputValueInvalid(f"{value[FILE_KEY]!r} is not a file id") from None


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


_COERCERS = {
    "any": _any,
    "short_text": lambda v, o: _text(v, o, short=True),
    "long_text": lambda v, o: _text(v, o, short=False),
    "number": _number,
    "integer": _integer,
    "boolean": _boolean,
    "date": _iso(date.fromisoformat, "a date (YYYY-MM-DD)"),
    "time": _iso(time.fromisoformat, "a time (HH:MM[:SS])"),
    "date_time": _iso(datetime.fromisoformat, "a date and time (ISO 8601)"),
    "choice": _choice,
    "file": _file,
}
