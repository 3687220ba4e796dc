"""What PostgreSQL's jsonb (and a text column) can store, checked before we try.

jsonb refuses NaN and infinities, NUL characters and unpaired surrogates; very deep nesting
exhausts Python's recursion while encoding. Client input with any of these is refused (400);
values produced by blocks are cleaned (text) or refused (numbers, depth) before storing.
"""

import math
from typing import Any

MAX_DEPTH = 100
REPLACEMENT = "\ufffd"


class UnstorableValue(ValueError):
    pass


def storable_problem(value: Any) -> str | None:
    """Why `value` cannot be stored as is, or None."""
    try:
        _walk(value, clean=False)
    except UnstorableValue as exc:
        return str(exc)
    return None


def make_storable(value: Any) -> Any:
    """`value` with NUL characters and unpaired surrogates in its text replaced; raises
    UnstorableValue for non-finite numbers or nesting deeper than MAX_DEPTH."""
    return _walk(value, clean=True)


def clean_text(text: str) -> str:
    """A string a text column can hold."""
    if "\x00" in text:
        text = text.replace("\x00", REPLACEMENT)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8").replace("?", REPLACEMENT)
    return text


def _text(text: str, clean: bool) -> str:
    if clean:
        return clean_text(text)
    if "\x00" in text:
        raise UnstorableValue("text may not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UnstorableValue("text may not contain unpaired surrogates") from exc
    return text


def _walk(value: Any, clean: bool, depth: int = 1) -> Any:
    if depth > MAX_DEPTH:
        raise UnstorableValue(f"values may not be nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, str):
        return _text(value, clean)
    if isinstance(value, float) and not math.isfinite(value):
        raise UnstorableValue(f"numbers must be finite, not {value}")
    if isinstance(value, dict):
        return {_text(str(k), clean): _walk(v, clean, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(v, clean, depth + 1) for v in value]
    return value
