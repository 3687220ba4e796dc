"""Dry runs: what a block that leaves the process (it calls a model, sends a request, waits
for a person) yields instead of running. A placeholder for its first output pin, shaped by
that pin's JSON Schema (a block may say better: `Block.simulate`), so a dry run follows the
branch a success would take and pure blocks downstream run for real on values of the right
shape."""

from __future__ import annotations

from typing import Any

PLACEHOLDER_TEXT = "[dry run]"


def placeholder(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> Any:
    """A value of the type the schema describes: text, 0, false, [] or {} (its required
    properties filled), or null when it says nothing."""
    defs = defs if defs is not None else schema.get("$defs", {})
    if "$ref" in schema:
        return placeholder(defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), defs)
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return placeholder(options[0], defs)
    kind = schema.get("type")
    if kind == "string":
        return PLACEHOLDER_TEXT
    if kind in ("integer", "number"):
        return 0
    if kind == "boolean":
        return False
    if kind == "array":
        return []
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: placeholder(properties[name], defs) for name in schema.get("required", [])}
    return None
