"""What the list and dictionary blocks share."""

from __future__ import annotations

from typing import Any

from .base import BlockError


def checked_index(items: list[Any], index: int) -> int:
    """`index` if the list has an item there (negative counts from the end), else
    BlockError saying so."""
    if not -len(items) <= index < len(items):
        raise BlockError(f"index {index} is outside a list of {len(items)}")
    return index
