"""Files in graphs: a value {"$file": "<id>"} names one of the run owner's files (files/,
through RunContext.files); the bytes never travel in node data."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from .base import BlockError

FILE_KEY = "$file"


@dataclass(frozen=True)
class FileContent:
    name: str
    content_type: str
    data: bytes


class FileAccess(Protocol):
    def store(self, name: str, content: bytes, call: str) -> dict[str, str]: ...

    def read(self, reference: Any, limit: int | None = None) -> FileContent: ...


def file_id_of(reference: Any) -> str:
    """The id a file reference names ({"$file": id}), or BlockError."""
    if isinstance(reference, dict) and set(reference) == {FILE_KEY}:
        try:
            return str(uuid.UUID(str(reference[FILE_KEY])))
        except ValueError:
            pass
    raise BlockError(f'expected a file reference {{"$file": "<id>"}}, got {reference!r}'[:300])


def is_file_reference(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {FILE_KEY}


def files_of(ctx: Any) -> FileAccess:
    """The run's file access, or BlockError where there is none (a dry run, a tool call)."""
    if ctx.files is None:
        raise BlockError("files cannot be used here")
    return ctx.files


def file_ids_in(value: Any) -> list[str]:
    """The ids of every file reference inside a JSON value, in order (malformed ids too, as
    written: they name no file)."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if is_file_reference(item):
            found.append(str(item[FILE_KEY]))
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return found
