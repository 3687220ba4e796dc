"""The block reference (docs/blocks.md), generated from the registry: every block's pins,
their JSON schemas, and its prices. `manage.py blocks_reference` writes it; a test checks
the committed page matches the code."""

from __future__ import annotations

import json
from typing import Any

from .registry import all_blocks

HEADER = """# Block reference

Generated from the block registry by `python manage.py blocks_reference`; do not edit by
hand. Prices are the blocks' own; an administrator can override them (admin: Block costs,
and Model prices for language-model tokens). Every block also has the output pin `error`.
"""


def render() -> str:
    parts = [HEADER]
    blocks = sorted(all_blocks(), key=lambda b: (b.category, b.name))
    parts.append("| block | category | what it does |\n|---|---|---|")
    parts += [
        f"| [`{b.name}`](#{b.name}) | {b.category} | {_cell(b.description)} |" for b in blocks
    ]
    for block in blocks:
        parts.append(_section(block))
    return "\n".join(parts).rstrip() + "\n"


def _section(block) -> str:
    prices = [f"{block.cost} per run"]
    if block.cost_per_second:
        prices.append(f"{block.cost_per_second:g} per second")
    if block.cost_per_mib:
        prices.append(f"{block.cost_per_mib:g} per MiB of output")
    if block.name.startswith("llm_"):
        prices.append("tokens at the model's price when the platform's key is used")
    inputs = block.input_schema()
    required = set(inputs.get("required", []))
    lines = [
        f"\n## {block.name}\n",
        f"{block.description}\n",
        f"- category: {block.category}; price: {', '.join(prices)}; time limit {block.timeout} s;"
        f" transient errors retried {block.max_retries} time(s)"
        + ("; static output" if block.static_output else ""),
        "",
        "| input | type | required | default | description |",
        "|---|---|---|---|---|",
    ]
    for pin, schema in inputs.get("properties", {}).items():
        default = schema.get("default", "")
        lines.append(
            f"| `{pin}` | {_type(schema)} | {'yes' if pin in required else ''} | "
            f"{_cell(json.dumps(default)) if 'default' in schema else ''} | "
            f"{_cell(schema.get('description', ''))} |"
        )
    outputs = block.output_schema().get("properties", {})
    lines += ["", "| output | type | description |", "|---|---|---|"]
    for pin, schema in outputs.items():
        lines.append(f"| `{pin}` | {_type(schema)} | {_cell(schema.get('description', ''))} |")
    if block.dynamic_outputs():
        lines.append("\nIts output pins also depend on its input (see the description).")
    return "\n".join(lines)


def _type(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    if "anyOf" in schema:
        return " or ".join(_type(s) for s in schema["anyOf"])
    kind = schema.get("type")
    if kind == "array" and "items" in schema:
        return f"list of {_type(schema['items'])}"
    return kind or "any"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
