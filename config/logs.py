"""Log context: every line logged while a task works on a run carries the run's id and, for
a node task, the node execution's id (`execution_id`, `node_execution_id` on each record).
Readable lines locally; JSON objects in production (python-json-logger), one per line."""

from __future__ import annotations

import logging
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
