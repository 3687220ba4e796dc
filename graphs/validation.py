"""Checks a graph document and reports every problem with where it is (node, pin, link).

Pure: takes the document and the block registry, returns the normalised document or the list
of problems. Nothing here touches the database.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from blocks.base import ERROR_PIN, Block
from blocks.catalogue.webhook_trigger import WEBHOOK_INPUT
from blocks.input_types import InputValueInvalid
from blocks.registry import get_block_class
from credentials.models import NAME_PATTERN
from credentials.references import referenced_names, substitute

from .hints import did_you_mean, pins_said, untold_template_variables
from .io_schemas import coerced_input, input_default_problems
from .pins import merge_dynamic_pins, parse_pin, path_problem, pin_base

NODE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_NAME = 200
MAX_PIN_NAME = 200


class GraphInvalid(Exception):
    def __init__(self, problems: list[dict[str, Any]]):
        super().__init__(f"{len(problems)} problem(s) in the graph")
        self.problems = problems


@dataclass
class _Problems:
    items: list[dict[str, Any]]
    # Nodes already reported (an unknown block): links to them are not reported again.
    reported_nodes: set[str] = field(default_factory=set)

    def add(self, message: str, **where: Any) -> None:
        self.items.append({**{k: v for k, v in where.items() if v is not None}, "message": message})


def validate_document(doc: Any) -> dict[str, Any]:
    """The normalised document, or GraphInvalid listing every problem found."""
    problems = _Problems([])
    if not isinstance(doc, dict):
        raise GraphInvalid([{"message": "the graph document must be a JSON object"}])

    name = doc.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        problems.add(f"name is required: a string of 1-{MAX_NAME} characters", field="name")
    description = doc.get("description", "")
    if description is None:
        description = ""
    if not isinstance(description, str):
        problems.add("description must be a string", field="description")

    raw_nodes = doc.get("nodes")
    raw_links = doc.get("links", [])
    if raw_links is None:
        raw_links = []
    if not isinstance(raw_nodes, list) or not raw_nodes:
        problems.add("nodes must be a non-empty list", field="nodes")
        raw_nodes = []
    elif len(raw_nodes) > settings.ENGINE_MAX_GRAPH_NODES:
        problems.add(
            f"too many nodes: the limit is {settings.ENGINE_MAX_GRAPH_NODES}", field="nodes"
        )
        raw_nodes = []
    if not isinstance(raw_links, list):
        problems.add("links must be a list", field="links")
        raw_links = []
    elif len(raw_links) > settings.ENGINE_MAX_GRAPH_LINKS:
        problems.add(
            f"too many links: the limit is {settings.ENGINE_MAX_GRAPH_LINKS}", field="links"
        )
        raw_links = []

    webhook_url = doc.get("webhook_url") or ""
    if (
        not isinstance(webhook_url, str)
        or len(webhook_url) > 2000
        or (webhook_url and urlsplit(webhook_url).scheme not in ("http", "https"))
    ):
        problems.add("webhook_url must be an http(s) URL", field="webhook_url")
    safe_mode = doc.get("safe_mode", False)
    if not isinstance(safe_mode, bool):
        problems.add("safe_mode must be true or false", field="safe_mode")
    nodes = _check_nodes(raw_nodes, problems)
    links = _check_links(raw_links, nodes, problems)
    if not problems.items:
        _check_required_inputs(nodes, links, problems)
        _check_templates(nodes, links, problems)
    if problems.items:
        raise GraphInvalid(problems.items)
    return {
        "name": str(name).strip(),
        "description": description,
        "nodes": list(nodes.values()),
        "links": links,
        "webhook_url": webhook_url,
        "safe_mode": safe_mode,
    }


def _check_nodes(raw_nodes: list[Any], problems: _Problems) -> dict[str, dict[str, Any]]:
    nodes: dict[str, dict[str, Any]] = {}
    for index, raw in enumerate(raw_nodes):
        where: dict[str, Any] = {"node_index": index}
        if not isinstance(raw, dict):
            problems.add("a node must be a JSON object", **where)
            continue
        node_id = raw.get("id")
        if not isinstance(node_id, str) or not NODE_ID_RE.match(node_id):
            problems.add("node id must be 1-64 characters of A-Z a-z 0-9 _ -", **where)
            continue
        where = {"node_id": node_id}
        if node_id in nodes:
            problems.add(f"duplicate node id {node_id!r}", **where)
            continue
        block_name = raw.get("block")
        block = get_block_class(block_name) if isinstance(block_name, str) else None
        if block is None:
            known = (cls.name for cls in Block.registry.values())
            hint = did_you_mean(block_name, known) if isinstance(block_name, str) else ""
            problems.add(f"unknown block {block_name!r}{hint}", **where)
            problems.reported_nodes.add(node_id)
            continue
        defaults = raw.get("input_default", {})
        if defaults is None:
            defaults = {}
        if not isinstance(defaults, dict):
            problems.add("input_default must be a JSON object", **where)
            continue
        for pin in defaults:
            problem = _sink_pin_problem(block, pin)
            if problem:
                problems.add(problem, node_id=node_id, pin=pin)
        for pin, value in merge_dynamic_pins(defaults).items():
            for name in referenced_names(value):
                if not re.fullmatch(NAME_PATTERN, name):
                    problems.add(f"invalid credential name {name!r}", node_id=node_id, pin=pin)
            if pin in block.input_pins():
                # A credential is a string known only at run time: check the rest around it.
                value = substitute(value, value, lambda name: "credential")
                reason = block.check_pin_value(pin, value)
                if reason:
                    problems.add(f"wrong value for pin {pin!r}: {reason}", node_id=node_id, pin=pin)
        if block.name == "input":
            for message, pin in input_default_problems(defaults):
                problems.add(message, node_id=node_id, pin=pin)
        metadata = raw.get("metadata", {})
        timeout = raw.get("timeout")
        cap = settings.ENGINE_NODE_TIMEOUT_CAP
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int) or not 0 < timeout <= cap
        ):
            problems.add(
                f"timeout must be a whole number of seconds from 1 to {cap} "
                "(ENGINE_NODE_TIMEOUT_CAP)",
                node_id=node_id,
                field="timeout",
            )
        nodes[node_id] = {
            "id": node_id,
            "block": block.name,
            "input_default": defaults,
            "metadata": {} if metadata is None else metadata,
            "timeout": timeout,
        }
    return nodes


def _check_links(
    raw_links: list[Any], nodes: dict[str, dict[str, Any]], problems: _Problems
) -> list[dict[str, Any]]:
    links: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str, str]] = set()
    for index, raw in enumerate(raw_links):
        if not isinstance(raw, dict):
            problems.add("a link must be a JSON object", link_index=index)
            continue
        raw_fields = {k: raw.get(k) for k in ("source_id", "source_name", "sink_id", "sink_name")}
        bad = [
            k
            for k, v in raw_fields.items()
            if not isinstance(v, str) or not v or len(v) > MAX_PIN_NAME
        ]
        if bad:
            problems.add(
                f"link fields {', '.join(bad)} must be non-empty strings", link_index=index
            )
            continue
        is_static = raw.get("is_static", False)
        if not isinstance(is_static, bool):
            problems.add("is_static must be true or false", link_index=index)
            continue
        fields: dict[str, str] = {k: str(v) for k, v in raw_fields.items()}
        src, sink = nodes.get(fields["source_id"]), nodes.get(fields["sink_id"])
        if src is None and fields["source_id"] not in problems.reported_nodes:
            problems.add(
                f"link from missing node {fields['source_id']!r}",
                link_index=index,
                node_id=fields["source_id"],
            )
        elif src is not None:
            _check_source_pin(src, fields["source_name"], index, problems)
            # Links leaving a block with static output are always static (graphs.md).
            is_static = is_static or _block_of(src).static_output
        if sink is None and fields["sink_id"] not in problems.reported_nodes:
            problems.add(
                f"link to missing node {fields['sink_id']!r}",
                link_index=index,
                node_id=fields["sink_id"],
            )
        elif sink is not None:
            _check_sink_pin(sink, fields["sink_name"], index, problems)
        key = (fields["source_id"], fields["source_name"], fields["sink_id"], fields["sink_name"])
        if key in seen:
            problems.add(
                "duplicate link",
                link_index=index,
                node_id=fields["sink_id"],
                pin=fields["sink_name"],
            )
        seen.add(key)
        links.append({**fields, "is_static": is_static})
    return links


def _block_of(node: dict[str, Any]) -> type[Block]:
    """The block of a node that passed _check_nodes (so it exists)."""
    return Block.registry[node["block"]]


def _check_source_pin(node: dict[str, Any], pin: str, index: int, problems: _Problems) -> None:
    block = _block_of(node)
    base, path = parse_pin(pin)
    malformed = path_problem(path, sink=False)
    if malformed:
        problems.add(f"{pin!r}: {malformed}", link_index=index, node_id=node["id"], pin=pin)
    elif not (block.dynamic_outputs() or base == ERROR_PIN or base in block.output_pins()):
        problems.add(
            f"unknown output pin {pin!r} of block {block.name!r}"
            f"{pins_said('output', {*block.output_pins(), ERROR_PIN})}",
            link_index=index,
            node_id=node["id"],
            pin=pin,
        )


def _check_sink_pin(node: dict[str, Any], pin: str, index: int, problems: _Problems) -> None:
    problem = _sink_pin_problem(_block_of(node), pin)
    if problem:
        problems.add(problem, link_index=index, node_id=node["id"], pin=pin)


def _sink_pin_problem(block: type[Block], pin: str) -> str | None:
    """Why `pin` (a link's sink or a default's key) names no input of the block: an unknown
    pin, a malformed path, or a path into a pin that is not a dict or list."""
    base, path = parse_pin(pin)
    if base not in block.input_pins():
        return (
            f"unknown input pin {pin!r} of block {block.name!r}"
            f"{did_you_mean(base, block.input_pins())}{pins_said('input', block.input_pins())}"
        )
    if not path:
        return None
    malformed = path_problem(path, sink=True)
    if malformed:
        return f"{pin!r}: {malformed}"
    if not block.pin_accepts(base, path[0][0]):
        return f"{pin!r} is not a dynamic entry of a dict or list pin"
    return None


def _check_required_inputs(
    nodes: dict[str, dict[str, Any]], links: list[dict[str, Any]], problems: _Problems
) -> None:
    linked: dict[str, set[str]] = {}
    for link in links:
        linked.setdefault(link["sink_id"], set()).add(pin_base(link["sink_name"]))
    for node in nodes.values():
        block = _block_of(node)
        given = set(merge_dynamic_pins(node["input_default"])) | linked.get(node["id"], set())
        for pin in sorted(block.required_inputs() - given):
            problems.add(
                f"required input {pin!r} has no default and no link", node_id=node["id"], pin=pin
            )


def _check_templates(
    nodes: dict[str, dict[str, Any]], links: list[dict[str, Any]], problems: _Problems
) -> None:
    """A text_template's variables must each be given: by its `values` or a values_#_KEY
    link (the block fails on an unknown name when it runs)."""
    sinks: dict[str, list[str]] = {}
    for link in links:
        sinks.setdefault(link["sink_id"], []).append(link["sink_name"])
    for node in nodes.values():
        if node["block"] != "text_template":
            continue
        merged = merge_dynamic_pins(node["input_default"])
        for name in untold_template_variables(node, merged, sinks.get(node["id"], [])):
            problems.add(
                f"template variable {name!r} is never given: link a value to "
                f"'values_#_{name}' or set it in `values`",
                node_id=node["id"], pin="format",
            )  # fmt: skip


def validate_graph_inputs(nodes: list[dict[str, Any]], inputs: Any) -> dict[str, Any]:
    """Checks a run's graph inputs against the graph's `input` nodes: names must be known, and
    an input node without a default value needs one. Returns the inputs or GraphInvalid."""
    if inputs is None:
        inputs = {}
    if not isinstance(inputs, dict):
        raise GraphInvalid([{"field": "inputs", "message": "inputs must be a JSON object"}])
    size = len(json.dumps(inputs, separators=(",", ":")))
    if size > settings.ENGINE_MAX_INPUT_BYTES:
        message = f"inputs are {size} bytes of JSON; the limit is {settings.ENGINE_MAX_INPUT_BYTES}"
        raise GraphInvalid([{"field": "inputs", "message": message}])
    input_nodes = {n["input_default"].get("name"): n for n in nodes if n["block"] == "input"}
    takes_webhook = any(n["block"] == "webhook_trigger" for n in nodes)
    problems = _Problems([])
    checked = dict(inputs)
    for name, value in inputs.items():
        if name == WEBHOOK_INPUT and takes_webhook:  # a trigger's delivery
            continue
        if name not in input_nodes:
            known = ", ".join(sorted(str(n) for n in input_nodes)) or "none"
            problems.add(f"unknown graph input {name!r} (inputs: {known})", input=name)
        elif value is not None:
            try:
                checked[name] = coerced_input(input_nodes[name], value)
            except InputValueInvalid as exc:
                problems.add(f"graph input {name!r}: {exc}", input=name)
    for name, node in input_nodes.items():
        if name not in inputs and node["input_default"].get("value") is None:
            problems.add(f"graph input {name!r} is required", node_id=node["id"], input=name)
    if problems.items:
        raise GraphInvalid(problems.items)
    return checked
