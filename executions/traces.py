"""A node execution's spans, when tracing is on (common/tracing.py).

Celery's instrumentation already makes a span of each node task, the child of whatever
published it. Under it go the node's block run (`node <id>`, with the run, the node and
the outcome as attributes) and, recorded once known, what the node waited for before:
its queue wait (from its row's `queued_at` to its claim; beside the task's span, under the
publish that queued it) and, for a node resumed from a wait, the wait (`wait <kind>`, from
parking to the decision). Callers test `tracing.ENABLED` first; nothing here runs when
tracing is off."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from common import tracing

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from .block_runs import Outcome
    from .claims import ClaimedNode


def node_attributes(claimed: ClaimedNode) -> dict[str, object]:
    return {
        "agentgraph.execution_id": str(claimed.execution_id),
        "agentgraph.node_execution_id": claimed.id,
        "agentgraph.node_id": claimed.node_id,
        "agentgraph.block": claimed.block,
        "agentgraph.graph_id": str(claimed.graph_id),
        "agentgraph.attempt": claimed.attempt,
        "agentgraph.depth": claimed.depth,
        "agentgraph.dry_run": claimed.dry_run,
    }


def waited_spans(claimed: ClaimedNode, published_in: str) -> None:
    """The queue wait and the wait this claimed node had behind it, as spans that ended
    now. `published_in`: the traceparent the task arrived with (its publisher's span)."""
    now_ns = time.time_ns()
    attributes = node_attributes(claimed)
    if claimed.queue_wait is not None:
        start_ns = now_ns - int(claimed.queue_wait * 1e9)
        tracing.past_span(
            f"queued {claimed.node_id}", start_ns, now_ns, attributes, parent=published_in
        )
    if claimed.waited is not None:
        kind, parked_at, decided_at = claimed.waited
        end = decided_at.timestamp() if decided_at is not None else now_ns / 1e9
        tracing.past_span(
            f"wait {kind}",
            int(parked_at.timestamp() * 1e9),
            int(end * 1e9),
            {**attributes, "agentgraph.wait.kind": kind},
        )


@contextmanager
def node_span(claimed: ClaimedNode) -> Iterator[Span | None]:
    """The span of the node's block run; `ended` records its outcome on it."""
    with tracing.span(f"node {claimed.node_id}", node_attributes(claimed)) as span:
        yield span


def ended(span: Span | None, outcome: Outcome) -> None:
    if span is None:
        return
    span.set_attribute("agentgraph.outputs", len(outcome.outputs))
    if outcome.parked:
        span.set_attribute("agentgraph.parked", True)
    if outcome.error:
        span.set_attribute("agentgraph.transient", outcome.transient)
        tracing.failed(span, outcome.error)
