"""Running a claimed node's block: its run context (credentials resolved, token holds, sub-graphs,
secrets kept out of logs), its time limit and output budget, and what it yielded (an Outcome)."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import time
import traceback
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from blocks.base import (
    ERROR_PIN,
    BlockError,
    GraphCall,
    Parked,
    RunContext,
    TransientBlockError,
    WaitFor,
)
from blocks.registry import get_block, get_block_class
from common.logs import secrets_kept_out_of_logs
from credentials.references import redact, referenced_names
from credentials.services import CredentialMissing, ResolvedInput, node_input_resolve
from credits.services import InsufficientCredits, charge_tool_run
from credits.tokens import charge_tokens, hold_tokens
from files.runs import RunFiles
from graphs.pins import merge_dynamic_pins

from .budgets import OutputBudget
from .claims import ClaimedNode
from .models import Wait
from .node_logs import NodeLog
from .plans import plan_for_version
from .stopping import NodeStopped, stoppable
from .streaming import TextStream
from .subgraphs import graph_tool_spec, graphs_start, subgraph_start
from .waits import ParkingNode, node_park, step_save

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    outputs: list[tuple[str, Any]] = field(default_factory=list)
    error: str | None = None
    transient: bool = False
    parked: bool = False  # the block waits (waits.py): its wait's decision resumes it
    seconds: float = 0.0


def block_run(claimed: ClaimedNode) -> Outcome:
    """Runs the block within the node's time limit: what it yielded, and how it ended
    (yields before a failure are kept, like a stream that broke). Credentials are resolved
    here, in the worker, and every secret put in is redacted from what comes out (outputs,
    error, log lines)."""
    outcome = Outcome()
    started = time.monotonic()
    try:
        resolved = _resolve_credentials(claimed)
    except CredentialMissing as exc:
        outcome.error = str(exc)
        return outcome
    meter = TokenMeter(claimed)
    stream = TextStream(claimed.execution_id, claimed.id, claimed.node_id, resolved.secrets)
    node_log = NodeLog(claimed.execution_id, claimed.id, claimed.node_id, resolved.secrets)
    ctx = RunContext(
        claimed.user_id,
        str(claimed.execution_id),
        claimed.node_id,
        claimed.id,
        attempt=claimed.attempt,
        retries_left=claimed.retries_left,
        depth=claimed.depth,
        meter=meter.record,
        hold=meter.hold,
        secrets=tuple(resolved.secrets),
        subgraph=functools.partial(_subgraph, claimed),
        park=functools.partial(_park, claimed, resolved.secrets, node_log),
        save_step=functools.partial(_save_step, claimed, resolved.secrets),
        graph_tool=functools.partial(_graph_tool, claimed),
        start_graphs=functools.partial(_start_graphs, claimed, resolved.secrets),
        tool_charge=functools.partial(_charge_tool, claimed),
        stream=stream.write,
        files=RunFiles(claimed.user_id, claimed.execution_id, claimed.id),
        logger=node_log.write,
    )
    # A node claimed back from a wait resumes its block with the decision; a safe-mode
    # approval only let it run (node_runs.py).
    wake = claimed.wake if claimed.wake and claimed.wake.kind != Wait.Kind.APPROVAL else None
    if claimed.wake is not None:
        node_log.write(f"resumed: its {claimed.wake.kind} wait was {claimed.wake.status}")
    budget = OutputBudget(settings.ENGINE_MAX_NODE_YIELDS, settings.ENGINE_MAX_NODE_OUTPUT_BYTES)
    try:
        with secrets_kept_out_of_logs(resolved.secrets), stoppable():
            for pin, value in get_block(claimed.block).execute(resolved.input_data, ctx, wake):
                if pin == ERROR_PIN:
                    outcome.error = str(value)
                    break
                exceeded = budget.spend(value)
                if exceeded:  # nothing of it goes on: a cut-off stream is not a result
                    outcome.outputs, outcome.error = [], exceeded
                    break
                outcome.outputs.append((pin, value))
    except Parked:
        outcome.parked = True
    except NodeStopped:
        outcome.error = "stopped: its run was cancelled"
    except SoftTimeLimitExceeded:
        outcome.error = f"timed out after {claimed.time_limit} s"
    except TransientBlockError as exc:
        outcome.error, outcome.transient = str(exc), True
    except BlockError as exc:
        outcome.error = str(exc)
    except Exception as exc:  # a block's bug must fail its node, not the worker
        trace = "".join(traceback.format_exception(exc))
        log.error(
            "block %s failed on node execution %s: %s",
            claimed.block,
            claimed.id,
            redact(trace, resolved.secrets),
        )
        outcome.error = f"{type(exc).__name__}: {exc}"
    stream.flush(final=True)  # the last of the live text goes before the node's completion
    if outcome.error:
        node_log.write(outcome.error, "warning" if outcome.transient else "error")
    node_log.flush()
    outcome.seconds = time.monotonic() - started
    if resolved.secrets:
        outcome.outputs = redact(outcome.outputs, resolved.secrets, resolved.restore)
        outcome.error = redact(outcome.error, resolved.secrets)
    return outcome


def _subgraph(claimed: ClaimedNode, graph_id: str, version: int | None, inputs) -> None:
    subgraph_start(
        parking(claimed),
        depth=claimed.depth,
        graph_id=graph_id,
        version=version,
        inputs=inputs,
    )


def _park(claimed: ClaimedNode, secrets: list[str], node_log: NodeLog, request: WaitFor) -> None:
    """A block's wait: what it shows a reviewer keeps none of the node's secrets."""
    if secrets and request.data is not None:
        request = dataclasses.replace(request, data=redact(request.data, secrets))
    deadline = f", for at most {request.seconds:g} s" if request.seconds else ""
    node_log.write(f"waiting ({request.kind}{deadline}); no worker is held meanwhile")
    node_park(parking(claimed), request)


def _save_step(claimed: ClaimedNode, secrets: list[str], state: Any) -> None:
    """Commit the block's step; if its run was paused meanwhile, park the node there until
    the run resumes (raises Parked)."""
    state = redact(state, secrets) if secrets else state
    if step_save(parking(claimed), state):
        raise Parked("paused")


def _graph_tool(claimed: ClaimedNode, graph_id: str, version: int | None) -> dict[str, Any]:
    return graph_tool_spec(user_id=claimed.user_id, graph_id=graph_id, version=version)


def _start_graphs(
    claimed: ClaimedNode, secrets: list[str], calls: list[GraphCall], state: Any
) -> dict[str, str]:
    state = redact(state, secrets) if secrets else state
    return graphs_start(parking(claimed), depth=claimed.depth, calls=calls, state=state)


def _charge_tool(claimed: ClaimedNode, block: str, call_id: str) -> str | None:
    try:
        charge_tool_run(claimed.payer, block=block, call_id=call_id)
    except InsufficientCredits as exc:
        return f"{exc}: the tool was not run"
    return None


def parking(claimed: ClaimedNode) -> ParkingNode:
    return ParkingNode(claimed.id, claimed.execution_id, claimed.node_id, claimed.user_id)


def _resolve_credentials(claimed: ClaimedNode) -> ResolvedInput:
    """The node's input with its secrets put in (credentials/services.py): the references
    its author wrote and, in a sub-graph run, those its parent node sealed for it. A block
    that starts runs of its own (agent_executor) hands them on sealed instead."""
    authored = _authored_with_credentials(claimed.graph_version_id, claimed.node_id)
    sealed_by = claimed.parent_node_execution_id
    if authored is None and sealed_by is None:
        return ResolvedInput(claimed.input_data)
    cls = get_block_class(claimed.block)
    return node_input_resolve(
        user_id=claimed.user_id,
        authored=authored,
        input_data=claimed.input_data,
        sealed_by=sealed_by,
        hand_on_as=claimed.id if cls is not None and cls.hands_on_credentials else None,
    )


@lru_cache(maxsize=4096)
def _authored_with_credentials(version_id: int, node_id: str) -> dict[str, Any] | None:
    """The node's own input (defaults, dynamic pins merged) if it names any credential, else
    None: computed once per process and node, since versions never change."""
    authored = merge_dynamic_pins(dict(plan_for_version(version_id).nodes[node_id].input_default))
    return authored if referenced_names(authored) else None


class TokenMeter:
    """A node's language-model calls with the platform's key: each is held before it is
    made and settled after, keyed by the node execution, the attempt and the call's number:
    a call is charged once however its task is delivered."""

    def __init__(self, claimed: ClaimedNode):
        self.claimed = claimed
        self.calls = itertools.count(1)
        self.call = ""

    def hold(self, model: str, prompt_bound: int, max_tokens: int) -> int:
        self.call = f"{self.claimed.id}:{self.claimed.attempt}:{next(self.calls)}"
        try:
            return hold_tokens(
                self.claimed.payer,
                model=model,
                prompt_bound=prompt_bound,
                max_tokens=max_tokens,
                call=self.call,
                attempt=self.claimed.attempt,
            )
        except InsufficientCredits as exc:
            raise BlockError(f"{exc}: the call was not made") from exc

    def record(self, model: str, prompt_tokens: int, completion_tokens: int) -> None:
        charge_tokens(
            self.claimed.payer,
            model=model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            call=self.call or f"{self.claimed.id}:{self.claimed.attempt}:{next(self.calls)}",
        )
        self.call = ""
