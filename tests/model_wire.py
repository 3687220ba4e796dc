"""Streaming as the providers stream: a finished answer (the JSON a non-streamed call gets)
cut into the server-sent events OpenAI's Chat Completions and Anthropic's Messages APIs send
for `"stream": true`, text a few characters per event, tool arguments in fragments."""

import json
import time


def _pieces(text, size=4):
    return [text[i : i + size] for i in range(0, len(text), size)]


def openai_events(payload):
    base = {k: payload[k] for k in ("id", "created", "model")}
    base["object"] = "chat.completion.chunk"
    message = payload["choices"][0]["message"]

    def chunk(delta, finish=None):
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": ""})
    for piece in _pieces(message.get("content") or ""):
        yield chunk({"content": piece})
    for i, call in enumerate(message.get("tool_calls") or []):
        yield chunk(
            {
                "tool_calls": [
                    {
                        "index": i,
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["function"]["name"], "arguments": ""},
                    }
                ]
            }
        )
        for piece in _pieces(call["function"]["arguments"], 7):
            yield chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
    yield chunk({}, payload["choices"][0]["finish_reason"])
    yield {**base, "choices": [], "usage": payload["usage"]}


def anthropic_events(payload):
    start = {
        **payload,
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": payload["usage"]["input_tokens"], "output_tokens": 1},
    }
    yield "message_start", {"type": "message_start", "message": start}
    for i, block in enumerate(payload["content"]):
        if block["type"] == "text":
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": i,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            for piece in _pieces(block["text"]):
                yield (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": i,
                        "delta": {"type": "text_delta", "text": piece},
                    },
                )
        else:
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": i,
                    "content_block": {**block, "input": {}},
                },
            )
            for piece in _pieces(json.dumps(block["input"]), 7):
                yield (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": i,
                        "delta": {"type": "input_json_delta", "partial_json": piece},
                    },
                )
        yield "content_block_stop", {"type": "content_block_stop", "index": i}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": payload["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": payload["usage"]["output_tokens"]},
        },
    )
    yield "message_stop", {"type": "message_stop"}


def send_stream(handler, path, payload, pause=0.0):
    """Answer `handler`'s request with `payload` streamed in the wire format of `path`,
    `pause` seconds between events."""
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Cache-Control", "no-cache")
    handler.end_headers()
    if path.endswith("/chat/completions"):
        frames = [f"data: {json.dumps(e)}\n\n" for e in openai_events(payload)]
        frames.append("data: [DONE]\n\n")
    else:
        frames = [f"event: {k}\ndata: {json.dumps(e)}\n\n" for k, e in anthropic_events(payload)]
    for frame in frames:
        handler.wfile.write(frame.encode())
        handler.wfile.flush()
        if pause:
            time.sleep(pause)
