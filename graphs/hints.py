"""Problem messages that say what to do: the names meant ("did you mean"), the pins a block
has, and template variables nothing gives (plain functions over the document)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from blocks.templating import template_variables

from .pins import parse_pin


def did_you_mean(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def pins_said(kind: str, pins: Iterable[str]) -> str:
    names = sorted(pins)
    return f" (its {kind} pins: {', '.join(names)})" if names else f" (it has no {kind} pins)"


def untold_template_variables(
    node: dict[str, Any], merged_defaults: dict[str, Any], sink_pins: list[str]
) -> list[str]:
    """The variables a text_template's `format` reads that neither its `values` default
    nor a values_#_KEY link gives (a link to the whole `values` pin may give any)."""
    source = merged_defaults.get("format")
    if not isinstance(source, str) or any(pin == "values" for pin in sink_pins):
        return []
    wanted = template_variables(source)
    if not wanted:
        return []
    given = set(merged_defaults.get("values") or {})
    for pin in sink_pins:
        base, path = parse_pin(pin)
        if base == "values" and path:
            given.add(path[0][1])
    return sorted(wanted - given)
