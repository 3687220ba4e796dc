"""One node execution, from its task to its result: lease, claim, charge, run, record.

Safe to run twice and to race: the lease tells a redelivered task whether the node's owner is
alive, the claim is a compare-and-set, the charge is keyed by the node execution, and the
result is recorded only by whoever moves the node out of RUNNING.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import random
import time
import traceback
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from blocks.base import ERROR_PIN, BlockError, RunContext, SubgraphStarted, TransientBlockError
from blocks.registry import get_block, get_block_class
from common import metrics
from common.json_values import clean_text
from common.logs import secrets_kept_out_of_logs
from credentials.references import redact, referenced_names
from credentials.services import CredentialMissing, ResolvedInput, node_input_resolve
from credits.costs import price_of
from credits.services import (
    InsufficientCredits,
    NodeCharge,
    charge_node_run,
    charge_tokens,
    hold_tokens,
)
from graphs.pins import merge_dynamic_pins

from . import events, quotas
from .chain_hop import book_result, record_single_hop, single_hop
from .engine import (
    OutputBudget,
    Status,
    node_time_limit,
    retry_delay,
    retry_limit,
)
from .events import node_event
from .finishing import cancel_if_run_ended, execution_finish
from .leases import NodeLease
from .models import GraphExecution, NodeExecution
from .plans import plan_for_version
from .propagation import propagate
from .settling import settle
from .stopping import NodeStopped, stoppable, working_on
from .subgraphs import subgraph_start
from .transitions import move

log = logging.getLogger(__name__)


class LeaseHeld(Exception):
    """A redelivered task found the node's lease held: its owner may be alive. Look again
    once the lease could have lapsed."""


class RetryNode(Exception):
    """The block failed transiently and may run again after `delay` seconds."""

    def __init__(self, delay: float):
        super().__init__(f"retry in {delay:.1f} s")
        self.delay = delay


@dataclass(frozen=True)
class ClaimedNode:
    id: int
    execution_id: Any
    node_id: str
    block: str
    input_data: dict[str, Any]
    graph_version_id: int
    user_id: int
    graph_id: Any
    attempt: int
    depth: int
    in_chord: bool
    # A sub-graph run's parent node execution: credential references sealed by it resolve.
    parent_node_execution_id: int | None

    @property
    def payer(self) -> NodeCharge:
        return NodeCharge(
            self.user_id, self.graph_id, self.execution_id, self.id, self.node_id, self.block
        )

    @property
    def time_limit(self) -> int:
        node = plan_for_version(self.graph_version_id).nodes[self.node_id]
        cls = get_block_class(self.block)
        default = cls.timeout if cls else settings.ENGINE_NODE_TIMEOUT_CAP
        return node_time_limit(default, node.timeout, settings.ENGINE_NODE_TIMEOUT_CAP)

    @property
    def retries_left(self) -> int:
        cls = get_block_class(self.block)
        limit = retry_limit(self.block, cls.max_retries if cls else 0, settings.ENGINE_RETRY_LIMITS)
        return max(0, limit - (self.attempt - 1))


@dataclass
class Outcome:
    outputs: list[tuple[str, Any]] = field(default_factory=list)
    error: str | None = None
    transient: bool = False
    child_execution_id: Any = None
    seconds: float = 0.0


# --- the node task --------------------------------------------------------------------------


def node_process(
    node_execution_id: int, *, take_over: bool, worker: str = "", execution_id: str = ""
) -> None:
    """One node task. Raises LeaseHeld or RetryNode for the task to try again later.

    A first delivery claims the node from QUEUED (compare-and-set) and takes its lease with
    the RUNNING event, in one Redis call. A redelivered or retried task, which may find the
    node RUNNING under an owner that lost its connection, takes the lease first and the node
    only if the lease was free and the node did not start just now."""
    with working_on(execution_id, node_execution_id):
        _process(node_execution_id, take_over, worker)


def _process(node_execution_id: int, take_over: bool, worker: str) -> None:
    lease = NodeLease(node_execution_id)
    if take_over and not lease.acquire():
        raise LeaseHeld(node_execution_id)
    try:
        claimed = node_claim(node_execution_id, take_over=take_over, lease=lease, worker=worker)
        if claimed is None:
            if take_over and _just_started(node_execution_id):
                raise LeaseHeld(node_execution_id)  # its owner may not hold its lease yet
            if take_over:
                _log_duplicate(node_execution_id)
            return
        over_budget = quotas.budget_left(claimed.user_id)
        if over_budget:
            node_fail_unpaid(claimed, over_budget)
            return
        try:
            if not _charge(claimed):
                return
        except InsufficientCredits as exc:
            node_fail_unpaid(claimed, str(exc))
            return
        outcome = node_run(claimed)
        quotas.count(claimed.user_id, outcome.seconds)
        metrics.NODE_RUN_SECONDS.labels(claimed.block).observe(outcome.seconds)
        if outcome.child_execution_id is not None:
            return  # the child's end completes this node
        if outcome.transient and claimed.retries_left > 0:
            raise RetryNode(
                retry_delay(
                    claimed.attempt,
                    settings.ENGINE_RETRY_BASE_SECONDS,
                    settings.ENGINE_RETRY_MAX_SECONDS,
                    random.random(),
                )
            )
        node_complete(claimed, outcome, lease)
    finally:
        lease.release()  # unless the completion's event call dropped it already


def _log_duplicate(node_execution_id: int) -> None:
    """A redelivered message whose node an earlier delivery already recorded: the usual
    sequel of a broker restart (README, "A broker restart while a task runs"). Said in the
    log so that the "Couldn't ack" Celery logs for the first delivery has its ending."""
    status = (
        NodeExecution.objects.filter(id=node_execution_id).values_list("status", flat=True).first()
    )
    log.info("duplicate delivery: node execution %s is already %s", node_execution_id, status)


# A take-over leaves alone a node that started this recently: its owner has claimed it and
# is about to take its lease (the two are separate steps).
TAKE_OVER_MARGIN_SECONDS = 2.0


def _just_started(node_execution_id: int) -> bool:
    return NodeExecution.objects.filter(
        id=node_execution_id,
        status=Status.RUNNING,
        started_at__gte=timezone.now() - timedelta(seconds=TAKE_OVER_MARGIN_SECONDS),
    ).exists()


_CLAIM_SQL = """
UPDATE executions_nodeexecution AS ne
   SET status = 'RUNNING', started_at = now(), attempts = ne.attempts + 1, worker = %s
  FROM executions_graphexecution AS ge
 WHERE ne.id = %s AND ge.id = ne.execution_id AND ge.status = 'RUNNING'
   AND (ne.status = 'QUEUED'
        OR (ne.status = 'RUNNING' AND %s
            AND ne.started_at < clock_timestamp() - make_interval(secs => %s)))
RETURNING ne.execution_id, ne.node_id, ne.block, ne.input_data, ge.graph_version_id,
          ge.user_id, ge.graph_id, ne.attempts, ge.depth, ne.join_id IS NOT NULL,
          ge.parent_node_execution_id, EXTRACT(EPOCH FROM clock_timestamp() - ne.queued_at)
"""


def node_claim(
    node_execution_id: int,
    *,
    take_over: bool = False,
    lease: NodeLease | None = None,
    worker: str = "",
) -> ClaimedNode | None:
    """QUEUED -> RUNNING while the run is RUNNING (this also reads the run's state from the
    database, whatever revokes a worker forgot). None when another delivery has it, it
    ended, or its run is not running. `take_over` lets a retried or redelivered task claim a
    node left RUNNING (the lease has shown its owner is gone)."""
    with connection.cursor() as cursor:
        cursor.execute(
            _CLAIM_SQL,
            [worker, node_execution_id, take_over, TAKE_OVER_MARGIN_SECONDS],
        )
        row = cursor.fetchone()
    if row is None:
        cancel_if_run_ended(node_execution_id)
        return None
    execution_id, node_id, block, input_data, version_id, user_id, graph_id, *rest, waited = row
    if isinstance(input_data, str):
        input_data = json.loads(input_data)
    if waited is not None and claimed_first_time(rest):
        metrics.NODE_QUEUE_WAIT_SECONDS.labels(block).observe(max(0.0, float(waited)))
    events.emit(
        execution_id,
        [node_event(execution_id, node_execution_id, node_id, Status.RUNNING)],
        lease=lease.taken_with_event() if lease is not None and not lease.held else None,
    )
    return ClaimedNode(
        node_execution_id,
        execution_id,
        node_id,
        block,
        input_data,
        version_id,
        user_id,
        graph_id,
        *rest,
    )


def claimed_first_time(rest: list[Any]) -> bool:
    """Queue wait is measured on the first attempt; a retry's wait includes its backoff."""
    return rest[0] == 1


def _charge(claimed: ClaimedNode) -> bool:
    """Charge the run's price, unless the node stopped running meanwhile (a cancel): the
    row lock orders the charge and a concurrent cancel. False when it stopped."""
    if price_of(claimed.block).per_run <= 0:
        return True
    with transaction.atomic():
        running = (
            NodeExecution.objects.select_for_update()
            .filter(id=claimed.id, status=Status.RUNNING)
            .exists()
        )
        if running:
            charge_node_run(claimed.payer)
    return running


def node_run(claimed: ClaimedNode) -> Outcome:
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
    )
    budget = OutputBudget(settings.ENGINE_MAX_NODE_YIELDS, settings.ENGINE_MAX_NODE_OUTPUT_BYTES)
    try:
        with secrets_kept_out_of_logs(resolved.secrets), stoppable():
            for pin, value in get_block(claimed.block).execute(resolved.input_data, ctx):
                if pin == ERROR_PIN:
                    outcome.error = str(value)
                    break
                exceeded = budget.spend(value)
                if exceeded:  # nothing of it goes on: a cut-off stream is not a result
                    outcome.outputs, outcome.error = [], exceeded
                    break
                outcome.outputs.append((pin, value))
    except SubgraphStarted as exc:
        outcome.child_execution_id = exc.child_execution_id
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
    outcome.seconds = time.monotonic() - started
    if resolved.secrets:
        outcome.outputs = redact(outcome.outputs, resolved.secrets, resolved.restore)
        outcome.error = redact(outcome.error, resolved.secrets)
    return outcome


def _subgraph(claimed: ClaimedNode, graph_id: str, version: int | None, inputs) -> None:
    subgraph_start(
        user_id=claimed.user_id,
        node_execution_id=claimed.id,
        depth=claimed.depth,
        graph_id=graph_id,
        version=version,
        inputs=inputs,
    )


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


def node_complete(claimed: ClaimedNode, outcome: Outcome, lease: NodeLease | None = None) -> None:
    """RUNNING -> COMPLETED/FAILED with its outputs, and the time/size part of its price
    settled. A node dispatched alone then carries its outputs downstream in the same
    transaction; a chord member leaves that to the join."""
    _record(
        claimed.execution_id,
        claimed.graph_version_id,
        claimed.id,
        claimed.node_id,
        claimed.block,
        claimed.in_chord,
        outcome,
        payer=claimed.payer,
        lease=lease,
        top_level=claimed.depth == 0,
    )


def node_complete_from_child(node_execution_id: int, child_execution_id) -> None:
    """A sub-graph run ended: its agent_executor node re-yields each output value on the pin
    of that name, or fails with the child's error. Once: recording moves the node from
    RUNNING only once."""
    child = GraphExecution.objects.filter(pk=child_execution_id).first()
    if child is None:
        return
    row = (
        NodeExecution.objects.filter(id=node_execution_id)
        .values(
            "execution_id",
            "node_id",
            "block",
            "join_id",
            "execution__graph_version_id",
            "execution__depth",
        )
        .first()
    )
    if row is None:
        return
    outcome = Outcome()
    if child.status == Status.COMPLETED:
        outcome.outputs = [(name, v) for name, values in child.outputs.items() for v in values]
    else:
        outcome.error = f"sub-graph run {child.pk} ended {child.status}: {child.error or ''}"
    _record(
        row["execution_id"],
        row["execution__graph_version_id"],
        node_execution_id,
        row["node_id"],
        row["block"],
        row["join_id"] is not None,
        outcome,
        payer=None,
        top_level=row["execution__depth"] == 0,
    )


def _record(
    execution_id,
    version_id: int,
    ne_id: int,
    node_id: str,
    block: str,
    in_chord: bool,
    outcome: Outcome,
    *,
    payer: NodeCharge | None,
    lease: NodeLease | None = None,
    top_level: bool = True,
) -> None:
    outputs, error = outcome.outputs, outcome.error
    if error is not None:
        error = clean_text(error)
        outputs = [*outputs, (ERROR_PIN, error)]
    output_data: dict[str, list[Any]] = {}
    for pin, value in outputs:
        output_data.setdefault(pin, []).append(value)
    ended = Status.FAILED if error is not None else Status.COMPLETED
    if not in_chord and top_level:  # a sub-graph run's count is on its root (limits.py)
        plan = plan_for_version(version_id)
        hop = single_hop(plan, node_id, outputs)
        if hop is not None:
            with transaction.atomic():
                record_single_hop(
                    execution_id,
                    plan,
                    version_id,
                    ne_id,
                    node_id,
                    block,
                    output_data,
                    error,
                    hop,
                    payer,
                    lease,
                    outcome.seconds,
                )
            return
    with transaction.atomic():
        moved = move(
            NodeExecution.objects.filter(id=ne_id),
            Status.RUNNING,
            ended,
            output_data=output_data,
            error=error,
            ended_at=timezone.now(),
            propagated=not in_chord,
        )
        if not moved:
            return
        book_result(node_id, block, error, payer, outcome.seconds, output_data)
        done = node_event(execution_id, ne_id, node_id, ended, outputs=output_data, error=error)
        drop = lease.dropped_with_event() if lease is not None else None
        if in_chord:
            events.emit(execution_id, [done], lease=drop)
            return
        plan = plan_for_version(version_id)
        result = propagate(execution_id, plan, [(node_id, outputs)])
        events.emit(execution_id, [done, *result.node_events(execution_id)], lease=drop)
        unhandled = int(error is not None and not plan.handles_errors(node_id))
        settle(execution_id, plan, version_id, done=1, result=result, unhandled=unhandled)


def node_fail_unpaid(claimed: ClaimedNode, reason: str) -> None:
    """A node its user cannot pay for (credits, worker time) fails without running, and so
    does its run: nothing more starts (nodes already running finish; queued ones are
    cancelled)."""
    with transaction.atomic():
        moved = move(
            NodeExecution.objects.filter(id=claimed.id),
            Status.RUNNING,
            Status.FAILED,
            error=reason,
            output_data={ERROR_PIN: [reason]},
            ended_at=timezone.now(),
        )
        if moved:
            transaction.on_commit(metrics.NODE_EXECUTIONS.labels(claimed.block, Status.FAILED).inc)
            failed = node_event(
                claimed.execution_id, claimed.id, claimed.node_id, Status.FAILED, error=reason
            )
            events.emit(claimed.execution_id, [failed])
            execution_finish(
                claimed.execution_id,
                Status.FAILED,
                error=f"node {claimed.node_id!r} could not run: {reason}",
            )
