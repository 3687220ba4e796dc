"""What a block's node waits for and how the wait ended: the plain data a parked node's
block and the engine pass each other (RunContext.wait_for, Block.resume)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WaitFor:
    """What a block asks its node to wait for, parked without a worker (RunContext.wait_for):
    `timer` (its `seconds`), `event` (POST /api/events/ with its `key`) or `review` (a
    person decides on `data`). `seconds` is the deadline (None: none of its own); when it
    passes, the block resumes with a `timed_out` Wake."""

    kind: str
    seconds: float | None = None
    key: str = ""
    data: Any = None
    message: str = ""
    editable: bool = False
    on_timeout: str = "fail"


@dataclass(frozen=True)
class Wake:
    """How a wait ended, as `Block.resume` gets it: `status` is approved, rejected,
    timed_out or woken; `payload` what came with it (edited data, an event's payload, a
    child run's end); `message` a reviewer's words."""

    kind: str
    status: str
    payload: Any = None
    message: str = ""


@dataclass(frozen=True)
class GraphCall:
    """One graph run a block asks for as a tool call (RunContext.run_graphs)."""

    call_id: str
    graph_id: str
    version: int | None
    inputs: dict[str, Any]


class Parked(Exception):
    """Raised once a node is parked (RunContext.wait_for, start_subgraph): the block stops
    here and its worker moves on; the wait's decision resumes it (Block.resume)."""


class SubgraphStarted(Parked):
    """Raised by RunContext.start_subgraph once a child run is created and the node parked."""

    def __init__(self, child_execution_id):
        super().__init__(f"waiting for sub-graph run {child_execution_id}")
        self.child_execution_id = child_execution_id
