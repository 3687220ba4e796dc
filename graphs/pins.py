"""The graph document's pin syntax, as plain functions: a pin is a name, or a dynamic entry
of a dict pin (`values_#_key`) or a list pin (`items_$_N`). The engine routes values by it,
validation checks documents with it."""

from __future__ import annotations

from typing import Any

DICT_SEP = "_#_"
LIST_SEP = "_$_"


def split_pin(name: str) -> tuple[str, str | None, str | None]:
    """'values_#_name' -> ('values', '#', 'name'); 'items_$_2' -> ('items', '$', '2');
    'plain' -> ('plain', None, None)."""
    for sep, kind in ((DICT_SEP, "#"), (LIST_SEP, "$")):
        if sep in name:
            base, key = name.split(sep, 1)
            return base, kind, key
    return name, None, None


def merge_dynamic_pins(data: dict[str, Any]) -> dict[str, Any]:
    """Fold dynamic entries into their pins: `values_#_k` into dict `values`, `items_$_N`
    into list `items` at index N (gaps filled with None). Plain pins pass through; entries
    are laid over a plain value of the same pin when it is a dict (or list)."""
    merged: dict[str, Any] = {}
    dict_parts: dict[str, dict[str, Any]] = {}
    list_parts: dict[str, dict[int, Any]] = {}
    for name, value in data.items():
        base, kind, key = split_pin(name)
        if kind == "#":
            dict_parts.setdefault(base, {})[key] = value  # type: ignore[index]
        elif kind == "$" and key is not None and key.isascii() and key.isdigit():
            list_parts.setdefault(base, {})[int(key)] = value
        else:
            merged[name] = value
    for base, entries in dict_parts.items():
        existing = merged.get(base)
        merged[base] = {**existing, **entries} if isinstance(existing, dict) else entries
    for base, positions in list_parts.items():
        existing = merged.get(base)
        items = list(existing) if isinstance(existing, list) else []
        for index in sorted(positions):
            while len(items) <= index:
                items.append(None)
            items[index] = positions[index]
        merged[base] = items
    return merged
