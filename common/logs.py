"""Log context: every line logged while a task works on a run carries the run's id and, for
a node task, the node execution's id (`execution_id`, `node_execution_id` on each record).
Readable lines locally; JSON objects in production (python-json-logger), one per line."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_execution_id: ContextVar[str | None] = ContextVar("execution_id", default=None)
_node_execution_id: ContextVar[int | None] = ContextVar("node_execution_id", default=None)


@contextmanager
def log_context(execution_id=None, node_execution_id=None) -> Iterator[None]:
    run_token = _execution_id.set(str(execution_id) if execution_id is not None else None)
    node_token = _node_execution_id.set(node_execution_id)
    try:
        yield
    finally:
        _node_execution_id.reset(node_token)
        _execution_id.reset(run_token)


class ContextFilter(logging.Filter):
    """Adds execution_id, node_execution_id and `context` (their readable form) to records."""

    def filter(self, record: logging.LogRecord) -> bool:
        run, node = _execution_id.get(), _node_execution_id.get()
        record.execution_id = run
        record.node_execution_id = node
        parts = [f"run={run}"] if run else []
        if node is not None:
            parts.append(f"node_execution={node}")
        record.context = f" [{' '.join(parts)}]" if parts else ""
        return True


# --- secrets out of log lines ---------------------------------------------------------------

_secrets: ContextVar[tuple[str, ...]] = ContextVar("secrets", default=())


@contextmanager
def secrets_kept_out_of_logs(secrets: list[str]) -> Iterator[None]:
    """While a node runs with secrets in its input, every line logged (by the block, or the
    libraries it calls) has them replaced."""
    token = _secrets.set(tuple(s for s in secrets if s))
    try:
        yield
    finally:
        _secrets.reset(token)


REDACTED = "[redacted]"
# Query parameters that carry credentials by their name, in any URL a line mentions (an
# access log's path, a client library's request line).
_SECRET_QUERY = re.compile(
    r"([?&](?:token|ticket|key|api[_-]?key|access[_-]?token|auth|secret|password|sig|"
    r"signature|code)=)[^&\s\"']*",
    re.IGNORECASE,
)


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    if "=" in text:
        text = _SECRET_QUERY.sub(rf"\1{REDACTED}", text)
    return text


class ScrubFilter(logging.Filter):
    """Rewrites a record's message without the running node's secrets and without the
    values of credential-like query parameters. On the console handler, and on uvicorn's
    own loggers (config/asgi.py), whose access lines print request paths."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = _secrets.get()
        message = record.getMessage()
        clean = scrub(message, secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if secrets and record.exc_info:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info), secrets)
            record.exc_info = None
        return True


def scrub_server_logs() -> None:
    """uvicorn logs through handlers of its own: scrub its lines at their loggers."""
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, ScrubFilter) for f in logger.filters):
            logger.addFilter(ScrubFilter())
