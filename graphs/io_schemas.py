"""A graph version's interface, from its `input` and `output` nodes: the JSON Schemas a client
builds a form or a typed call from (input_schema, output_schema), and the checking (with
unambiguous coercion) of the values given for typed inputs (blocks/input_types.py)."""

from __future__ import annotations

from typing import Any

from blocks.input_types import InputValueInvalid, coerce, type_schema

_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _setting(node: dict[str, Any], pin: str, default: Any = None) -> Any:
    return node["input_default"].get(pin, default)


def input_default_problems(defaults: dict[str, Any]) -> list[tuple[str, str]]:
    """What is wrong with an input node's own settings, as (message, pin)."""
    kind, options = defaults.get("type", "any"), defaults.get("options")
    if kind == "choice" and not options:
        return [("a choice input needs `options` to choose among", "options")]
    if options is not None and kind != "choice":
        return [("`options` is for inputs of type choice", "options")]
    value = defaults.get("value")
    if value is None or not isinstance(kind, str):
        return []  # a wrong `type` is the pin's own check
    try:
        coerce(kind, value, options)
    except InputValueInvalid as exc:
        return [(f"the default value does not fit type {kind}: {exc}", "value")]
    return []


def coerced_input(node: dict[str, Any], value: Any) -> Any:
    """A run's value for an input node, checked (and coerced) by its type."""
    return coerce(_setting(node, "type", "any"), value, _setting(node, "options"))


def input_schema(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """JSON Schema of the run inputs the version takes: one property per input node (its
    type, description, default); required: those without a default value."""
    properties: dict[str, Any] = {}
    required = []
    for node in nodes:
        if node["block"] != "input":
            continue
        name = _setting(node, "name")
        prop = {
            "title": name,
            **type_schema(_setting(node, "type", "any"), _setting(node, "options")),
        }
        if _setting(node, "description"):
            prop["description"] = _setting(node, "description")
        if _setting(node, "value") is None:
            required.append(name)
        else:
            prop["default"] = _setting(node, "value")
        properties[name] = prop
    return {"$schema": _DIALECT, "type": "object", "properties": properties,
            "required": required, "additionalProperties": False}  # fmt: skip


def output_schema(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """JSON Schema of a run's `outputs`: for each output node's name, the list of the values
    it recorded (a node may record any number)."""
    properties: dict[str, Any] = {}
    for node in nodes:
        if node["block"] != "output":
            continue
        name = _setting(node, "name")
        prop: dict[str, Any] = {"title": name, "type": "array", "items": {}}
        if _setting(node, "description"):
            prop["description"] = _setting(node, "description")
        properties[name] = prop
    return {"$schema": _DIALECT, "type": "object", "properties": properties}
