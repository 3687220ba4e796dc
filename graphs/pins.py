"""The graph document's pin syntax, as plain functions. A pin is a name, or a name and a
path of dict keys (`_#_key`) and list indexes (`_$_N`), as in the AutoGPT executor:

- on a sink, `values_#_user_#_name` builds `{"user": {"name": …}}` into dict pin `values`,
  `items_$_2` puts the value at index 2 of list pin `items`;
- on a source, `result_$_0_#_name` sends only `result[0]["name"]` (nothing when it is
  missing; a source index may be negative).

The engine routes values by it, validation checks documents with it."""

from __future__ import annotations

import re
from typing import Any

DICT_SEP = "_#_"
LIST_SEP = "_$_"
_STEP = re.compile(r"(_#_|_\$_)")

Path = tuple[tuple[str, str], ...]  # (kind '#' or '$', key) per step


def parse_pin(name: str) -> tuple[str, Path]:
    """'values_#_user_#_name' -> ('values', (('#', 'user'), ('#', 'name')));
    'items_$_2' -> ('items', (('$', '2'),)); 'plain' -> ('plain', ())."""
    if DICT_SEP not in name and LIST_SEP not in name:
        return name, ()
    parts = _STEP.split(name)
    steps = tuple(
        ("#" if sep == DICT_SEP else "$", key)
        for sep, key in zip(parts[1::2], parts[2::2], strict=True)
    )
    return parts[0], steps


def pin_base(name: str) -> str:
    return parse_pin(name)[0]


def path_problem(path: Path, *, sink: bool) -> str | None:
    """Why a path is malformed (an empty key; a list index that is not an integer, or on a
    sink a negative one), or None."""
    for kind, key in path:
        if not key:
            return "a pin path has an empty key"
        if kind == "$" and not _is_index(key, negative=not sink):
            return f"list index {key!r} is not a{' non-negative' if sink else 'n'} integer"
    return None


def merge_dynamic_pins(data: dict[str, Any]) -> dict[str, Any]:
    """Fold dynamic entries into their pins, nested as their paths say: dict steps make (or
    extend) dicts, list steps lists (gaps filled with None). Plain pins pass through, and
    entries are laid over a plain value of the same pin when its shape fits. The values
    given are not changed: containers are copied before entries go in."""
    if not any(DICT_SEP in name or LIST_SEP in name for name in data):
        return dict(data)
    merged: dict[str, Any] = {}
    entries: list[tuple[str, Path, Any]] = []
    for name, value in data.items():
        base, path = parse_pin(name)
        if path and path_problem(path, sink=True) is None:
            entries.append((base, path, value))
        else:
            merged[name] = value  # plain, or malformed (validation refuses it at save)
    owned: set[int] = set()  # containers made here, filled in place
    for base, path, value in entries:
        merged[base] = _put(merged.get(base), path, value, owned)
    return merged


def _put(container: Any, path: Path, value: Any, owned: set[int]) -> Any:
    (kind, key), rest = path[0], path[1:]
    if kind == "#":
        into = container if isinstance(container, dict) else {}
        if id(into) not in owned:
            into = dict(into)
            owned.add(id(into))
        into[key] = _put(into.get(key), rest, value, owned) if rest else value
        return into
    index = int(key)
    items = container if isinstance(container, list) else []
    if id(items) not in owned:
        items = list(items)
        owned.add(id(items))
    while len(items) <= index:
        items.append(None)
    items[index] = _put(items[index], rest, value, owned) if rest else value
    return items


MISSING = object()


def pick(path: Path, value: Any) -> Any:
    """The part of an output value a source path names, or MISSING."""
    for kind, key in path:
        if kind == "#" and isinstance(value, dict) and key in value:
            value = value[key]
        elif kind == "$" and isinstance(value, list) and _is_index(key, negative=True):
            index = int(key)
            if not -len(value) <= index < len(value):
                return MISSING
            value = value[index]
        else:
            return MISSING
    return value


def _is_index(key: str, *, negative: bool) -> bool:
    """An ASCII integer (str.isdigit() also takes '²' and full-width digits)."""
    digits = key.removeprefix("-") if negative else key
    return digits.isascii() and digits.isdigit()
