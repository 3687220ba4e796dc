"""Request bodies are limited before they are read: an ASGI middleware in front of Django.

Django's ASGI handler reads a whole body (spooling it to disk) before any Django middleware
or view runs, so a client that announces 50 MB, or trickles bytes, held a request open. Here
a declared Content-Length over API_MAX_BODY_BYTES is refused at once (413), a body sent
without one is counted as it streams in and refused once it passes the limit, and a body
that stops arriving for API_BODY_READ_SECONDS is refused (408). Inside Django,
common.api.LimitedJSONParser still caps what it parses (the test client bypasses ASGI)."""

from __future__ import annotations

import asyncio
import json

from django.conf import settings


async def _refuse(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


UPLOAD_PATH = "/api/files/"
UPLOAD_OVERHEAD = 64 * 1024


class BodyLimit:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit, patience = settings.API_MAX_BODY_BYTES, settings.API_BODY_READ_SECONDS
        if scope.get("path") == UPLOAD_PATH:  # a file and its multipart framing
            limit = max(limit, settings.FILES_MAX_BYTES + UPLOAD_OVERHEAD)
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None:
            if not (declared.isascii() and declared.isdigit()):
                return await _refuse(send, 400, "Content-Length is not a number.")
            if int(declared) > limit:
                return await _refuse(
                    send,
                    413,
                    f"Request body too large: {int(declared)} bytes, the limit is {limit} "
                    "(API_MAX_BODY_BYTES).",
                )
        received, reading = 0, True

        async def limited_receive():
            nonlocal received, reading
            if not reading:  # the body is in; Django now only listens for a disconnect
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), patience)
            except TimeoutError:
                await _refuse(send, 408, f"Request body not sent within {patience} s.")
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    await _refuse(send, 413, f"Request body too large; the limit is {limit} bytes.")
                    return {"type": "http.disconnect"}
                reading = message.get("more_body", False)
            return message

        return await self.app(scope, limited_receive, send)
