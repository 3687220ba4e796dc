"""Streamed answers: the provider's server-sent events read as they come, each piece of text
handed on at once (RunContext.stream shows it live), and the whole answer (text, tool calls,
usage) put together as a non-streamed call would give it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from .chat_formats import parse_arguments


def openai_streamed(
    chunks: Iterable[Any], on_text: Callable[[str], None]
) -> tuple[str, list[dict[str, Any]], tuple[int, int] | None]:
    """Chat Completions chunks: (text, tool calls, (prompt, completion) tokens or None when
    the server sent no usage)."""
    text: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    usage = None
    for chunk in chunks:
        if getattr(chunk, "usage", None):
            usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        for choice in chunk.choices or []:
            delta = choice.delta
            if delta.content:
                text.append(delta.content)
                on_text(delta.content)
            for part in delta.tool_calls or []:
                call = calls.setdefault(part.index, {"id": "", "name": "", "arguments": ""})
                call["id"] = part.id or call["id"]
                if part.function is not None:
                    call["name"] += part.function.name or ""
                    call["arguments"] += part.function.arguments or ""
    tool_calls = [
        {"id": c["id"], "name": c["name"], "arguments": parse_arguments(c["arguments"])}
        for _, c in sorted(calls.items())
    ]
    return "".join(text), tool_calls, usage


def anthropic_streamed(
    events: Iterable[Any], on_text: Callable[[str], None]
) -> tuple[str, list[dict[str, Any]], tuple[int, int]]:
    """Messages API stream events: (text, tool calls, (input, output) tokens)."""
    text: list[str] = []
    blocks: dict[int, dict[str, Any]] = {}
    input_tokens = output_tokens = 0
    for event in events:
        kind = event.type
        if kind == "message_start":
            input_tokens = event.message.usage.input_tokens
            output_tokens = event.message.usage.output_tokens or 0
        elif kind == "content_block_start" and event.content_block.type == "tool_use":
            block = event.content_block
            blocks[event.index] = {"id": block.id, "name": block.name, "json": ""}
        elif kind == "content_block_delta":
            if event.delta.type == "text_delta":
                text.append(event.delta.text)
                on_text(event.delta.text)
            elif event.delta.type == "input_json_delta" and event.index in blocks:
                blocks[event.index]["json"] += event.delta.partial_json
        elif kind == "message_delta" and event.usage is not None:
            output_tokens = event.usage.output_tokens
    tool_calls = [
        {"id": b["id"], "name": b["name"], "arguments": parse_arguments(b["json"] or "{}")}
        for _, b in sorted(blocks.items())
    ]
    return "".join(text), tool_calls, (input_tokens, output_tokens)


def estimated_usage(
    prompt_bound: int, text: str, tool_calls: list[dict[str, Any]]
) -> tuple[int, int]:
    """What a stream that reported no usage is charged: the prompt's bound and the answer's
    bytes (each a token at most), never less than it could have cost."""
    answer = text + (json.dumps(tool_calls) if tool_calls else "")
    return prompt_bound, len(answer.encode())
