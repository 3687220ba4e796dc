"""One conversation, two wire formats: the provider-neutral messages and tools an agent keeps
(JSON, committed after every step) and what OpenAI's Chat Completions and Anthropic's
Messages APIs take and give for them, tool calls included.

Neutral messages:
    {"role": "user", "content": str}
    {"role": "assistant", "content": str, "tool_calls": [{"id", "name", "arguments": dict}]}
    {"role": "tool", "tool_call_id": str, "name": str, "content": str, "is_error": bool}
Neutral tools: {"name", "description", "parameters": JSON Schema of an object}.
"""

from __future__ import annotations

import json
from typing import Any


def openai_messages(messages: list[dict[str, Any]], system: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for message in messages:
        role = message["role"]
        if role == "assistant" and message.get("tool_calls"):
            out.append(
                {
                    "role": "assistant",
                    "content": message.get("content") or None,
                    "tool_calls": [
                        {
                            "id": call["id"],
                            "type": "function",
                            "function": {
                                "name": call["name"],
                                "arguments": json.dumps(call["arguments"]),
                            },
                        }
                        for call in message["tool_calls"]
                    ],
                }
            )
        elif role == "tool":
            out.append(
                {"role": "tool", "tool_call_id": message["tool_call_id"],
                 "content": message["content"]}
            )  # fmt: skip
        else:
            out.append({"role": role, "content": message.get("content") or ""})
    return out


def openai_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {
                "name": tool["name"],
                "description": tool["description"],
                "parameters": tool["parameters"],
            },
        }
        for tool in tools
    ]


def openai_tool_calls(message: Any) -> list[dict[str, Any]]:
    """The tool calls of a Chat Completions answer, their arguments parsed (arguments that
    are not a JSON object come back as {"$unparsed": text}: the call gets an error)."""
    calls = []
    for call in getattr(message, "tool_calls", None) or []:
        calls.append(
            {
                "id": call.id,
                "name": call.function.name,
                "arguments": parse_arguments(call.function.arguments),
            }
        )
    return calls


def anthropic_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message["role"]
        if role == "assistant":
            content: list[dict[str, Any]] = []
            if message.get("content"):
                content.append({"type": "text", "text": message["content"]})
            content += [
                {"type": "tool_use", "id": c["id"], "name": c["name"], "input": c["arguments"]}
                for c in message.get("tool_calls") or []
            ]
            out.append({"role": "assistant", "content": content})
        elif role == "tool":
            result = {
                "type": "tool_result",
                "tool_use_id": message["tool_call_id"],
                "content": message["content"],
                "is_error": bool(message.get("is_error")),
            }
            # Results of one turn's calls go back together, in one user message.
            last = out[-1] if out else None
            if last and last["role"] == "user" and isinstance(last["content"], list):
                last["content"].append(result)
            else:
                out.append({"role": "user", "content": [result]})
        else:
            out.append({"role": "user", "content": message.get("content") or ""})
    return out


def anthropic_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"name": t["name"], "description": t["description"], "input_schema": t["parameters"]}
        for t in tools
    ]


def anthropic_tool_calls(content: list[Any]) -> list[dict[str, Any]]:
    return [
        {"id": block.id, "name": block.name, "arguments": block.input}
        for block in content
        if block.type == "tool_use"
    ]


def parse_arguments(raw: str | None) -> dict[str, Any]:
    """A tool call's arguments: a JSON object, or {"$unparsed": text} (the call fails)."""
    try:
        parsed = json.loads(raw or "{}")
    except ValueError:
        return {"$unparsed": raw}
    return parsed if isinstance(parsed, dict) else {"$unparsed": raw}
