"""Per-node logs: the lines a node execution's block logs (RunContext.log) and what the
engine says about it (a retry, a take-over, a wait), kept with the node execution and shown
live as `log` events. At most ENGINE_MAX_NODE_LOG_LINES lines of NODE_LOG_LINE_CHARS each per
node execution; every secret the node was given is redacted from them."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from credentials.references import redact

from . import events
from .models import NodeLogLine

log = logging.getLogger(__name__)

LEVELS = ("debug", "info", "warning", "error")
NODE_LOG_LINE_CHARS = 2000


class NodeLog:
    """One node execution's lines while its block runs: sent live as they come, written
    in one statement when it ends (flush)."""

    def __init__(self, execution_id, node_execution_id: int, node_id: str, secrets=()):
        self.execution_id, self.node_execution_id, self.node_id = (
            execution_id, node_execution_id, node_id,
        )  # fmt: skip
        self.secrets = [s for s in secrets if s]
        self.lines: list[NodeLogLine] = []
        self.room = settings.ENGINE_MAX_NODE_LOG_LINES  # less what earlier attempts wrote
        self.counted = False
        self.dropped = 0

    def write(self, message: Any, level: str = "info") -> None:
        if not self.counted:  # an earlier attempt's lines count against the cap
            self.counted = True
            self.room -= NodeLogLine.objects.filter(
                node_execution_id=self.node_execution_id
            ).count()
        if len(self.lines) >= self.room:
            self.dropped += 1
            return
        line = _line(self.node_execution_id, message, level, self.secrets)
        self.lines.append(line)
        events.append_now(self.execution_id, [_event(self.execution_id, self.node_id, line)])

    def flush(self) -> None:
        """Write the lines (and how many the cap dropped); never raises: logs are a view."""
        if self.dropped:
            self.lines.append(_line(
                self.node_execution_id, f"{self.dropped} more line(s) not kept: the limit is "
                f"{settings.ENGINE_MAX_NODE_LOG_LINES} (ENGINE_MAX_NODE_LOG_LINES)", "warning", (),
            ))  # fmt: skip
        if not self.lines:
            return
        try:
            NodeLogLine.objects.bulk_create(self.lines)
        except Exception:  # the node's outcome matters more than its log
            log.warning("could not keep the log of node execution %s", self.node_execution_id,
                        exc_info=True)  # fmt: skip
        self.lines, self.dropped = [], 0


def node_log_line(execution_id, node_execution_id: int, node_id: str, message: str,
                  level: str = "info") -> None:  # fmt: skip
    """One line the engine says about a node execution (a retry, a take-over, a wait)."""
    one = NodeLog(execution_id, node_execution_id, node_id)
    one.write(message, level)
    one.flush()


def log_lines_of(node_execution_id: int) -> QuerySet[NodeLogLine]:
    return NodeLogLine.objects.filter(node_execution_id=node_execution_id).order_by("id")


def log_line_record(line: NodeLogLine) -> dict[str, Any]:
    return {"id": line.pk, "at": line.created_at, "level": line.level, "message": line.message}


def _line(node_execution_id: int, message: Any, level: str, secrets) -> NodeLogLine:
    text = redact(str(message), list(secrets))[:NODE_LOG_LINE_CHARS]
    return NodeLogLine(
        node_execution_id=node_execution_id, level=level if level in LEVELS else "info",
        message=text, created_at=timezone.now(),
    )  # fmt: skip


def _event(execution_id, node_id: str, line: NodeLogLine) -> dict[str, Any]:
    return {
        "type": "log", "execution_id": str(execution_id), "node_id": node_id,
        "node_execution_id": line.node_execution_id, "level": line.level,
        "message": line.message, "at": line.created_at,
    }  # fmt: skip
