"""Text a running block streams (a language model's tokens), shown live: coalesced into
`delta` node events at most every STREAM_FLUSH_SECONDS, in order, before the node's
completion event. Each carries `offset` (the characters streamed before it), so a client
that has some of the text already (from its snapshot) keeps only what is new. The text so
far is kept in Redis for snapshots; the node's record keeps only its final outputs."""

from __future__ import annotations

import logging
import time

import redis

from credentials.references import redact

from . import events

log = logging.getLogger(__name__)

STREAM_FLUSH_SECONDS = 0.075


def text_key(node_execution_id: int) -> str:
    return f"agentgraph:node:{node_execution_id}:text"


class TextStream:
    """One node execution's streamed text (RunContext.stream)."""

    def __init__(self, execution_id, node_execution_id: int, node_id: str, secrets=()):
        self.execution_id, self.node_execution_id, self.node_id = (
            execution_id, node_execution_id, node_id,
        )  # fmt: skip
        # The node's secrets never go out: each is redacted, and the text's last characters
        # (where one may be only half streamed) wait for the next flush.
        self.secrets = [s for s in secrets if s]
        self.held_back = max((len(s) for s in self.secrets), default=1) - 1
        self.pending = ""
        self.sent = 0
        self.flushed_at = time.monotonic()

    def write(self, text: str) -> None:
        if not text:
            return
        self.pending += text
        if time.monotonic() - self.flushed_at >= STREAM_FLUSH_SECONDS:
            self.flush()

    def flush(self, *, final: bool = False) -> None:
        """Send what is pending as one `delta` event (never raises: live text is a view)."""
        self.flushed_at = time.monotonic()
        text = redact(self.pending, self.secrets)
        cut = len(text) if final or not self.held_back else max(0, len(text) - self.held_back)
        delta, self.pending = text[:cut], text[cut:]
        if not delta:
            return
        event = events.node_event(
            self.execution_id, self.node_execution_id, self.node_id, "RUNNING"
        )
        event.update(delta=delta, offset=self.sent)
        first, self.sent = self.sent == 0, self.sent + len(delta)
        events.append_now(self.execution_id, [event])
        try:
            key = text_key(self.node_execution_id)
            pipe = events.client().pipeline(transaction=False)
            if first:  # a task's text starts afresh (a take-over streams from its own start)
                pipe.set(key, delta.encode(), ex=events.STREAM_TTL)
            else:
                pipe.append(key, delta.encode())
                pipe.expire(key, events.STREAM_TTL)
            pipe.execute()
        except redis.RedisError:
            log.warning("could not keep the streamed text of node execution %s",
                        self.node_execution_id, exc_info=True)  # fmt: skip


def texts_so_far(node_execution_ids: list[int]) -> dict[int, str]:
    """The text each running node has streamed so far (for a snapshot)."""
    if not node_execution_ids:
        return {}
    try:
        values = events.client().mget([text_key(i) for i in node_execution_ids])
    except redis.RedisError:
        return {}
    return {
        i: v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
        for i, v in zip(node_execution_ids, values, strict=True)
        if v
    }
