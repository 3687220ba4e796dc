"""Regular expressions for text blocks, through the `regex` package: the same syntax as
`re`, plus a time limit per match, so a pattern with catastrophic backtracking fails its
node instead of holding a worker until its hard time limit."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import regex

from .base import BlockError

MATCH_SECONDS = 2.0


@lru_cache(maxsize=256)
def compiled(pattern: str, *, case_sensitive: bool = True, dot_all: bool = True):
    flags = (0 if case_sensitive else regex.IGNORECASE) | (regex.DOTALL if dot_all else 0)
    try:
        return regex.compile(pattern, flags | regex.VERSION0)
    except regex.error as exc:
        raise BlockError(f"invalid pattern {pattern!r}: {exc}") from exc


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def search(pattern, value: Any):
    try:
        return pattern.search(as_text(value), timeout=MATCH_SECONDS)
    except TimeoutError as exc:
        raise BlockError(f"the pattern took over {MATCH_SECONDS} s on this text") from exc


def finditer(pattern, text: str):
    try:
        yield from pattern.finditer(text, timeout=MATCH_SECONDS)
    except TimeoutError as exc:
        raise BlockError(f"the pattern took over {MATCH_SECONDS} s on this text") from exc
