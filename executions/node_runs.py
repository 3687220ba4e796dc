"""One node execution, from its task to its result: lease, claim, charge, run the block,
record. Each step is a module of its own (claims, block_runs, recording); this one reads
top to bottom.

Safe to run twice and to race: the lease tells a redelivered task whether the node's owner is
alive, the claim is a compare-and-set, the charge is keyed by the node execution, and the
result is recorded only by whoever moves the node out of RUNNING."""

from __future__ import annotations

import random

from django.conf import settings
from django.db import transaction

from common import metrics, tracing
from credits.costs import price_of
from credits.services import InsufficientCredits, charge_node_run

from . import quotas, traces
from .block_runs import Outcome, block_run
from .budgets import retry_delay
from .claims import ClaimedNode, just_started, log_duplicate_delivery, node_claim
from .dry_runs import dry_run_outcome
from .engine import Status
from .leases import NodeLease
from .models import NodeExecution
from .node_logs import node_log_line
from .recording import node_complete, node_fail_unpaid
from .run_budgets import budget_refused, budget_review_needed
from .safe_mode import approval_needed, refused_in_review
from .stopping import working_on


class LeaseHeld(Exception):
    """A redelivered task found the node's lease held: its owner may be alive. Look again
    once the lease could have lapsed."""


class RetryNode(Exception):
    """The block failed transiently and may run again after `delay` seconds."""

    def __init__(self, delay: float):
        super().__init__(f"retry in {delay:.1f} s")
        self.delay = delay


def node_process(
    node_execution_id: int,
    *,
    take_over: bool,
    worker: str = "",
    execution_id: str = "",
    published_in: str = "",
) -> None:
    """One node task. Raises LeaseHeld or RetryNode for the task to try again later.

    A first delivery claims the node from QUEUED (compare-and-set) and takes its lease with
    the RUNNING event, in one Redis call. A redelivered or retried task, which may find the
    node RUNNING under an owner that lost its connection, takes the lease first and the node
    only if the lease was free and the node did not start just now. `published_in`: the
    trace context the task arrived with (traces.py), if tracing is on."""
    with working_on(execution_id, node_execution_id):
        _process(node_execution_id, take_over, worker, published_in)


def _process(node_execution_id: int, take_over: bool, worker: str, published_in: str) -> None:
    lease = NodeLease(node_execution_id)
    if take_over and not lease.acquire():
        raise LeaseHeld(node_execution_id)
    try:
        claimed = node_claim(node_execution_id, take_over=take_over, lease=lease, worker=worker)
        if claimed is None:
            if take_over and just_started(node_execution_id):
                raise LeaseHeld(node_execution_id)  # its owner may not hold its lease yet
            if take_over:
                log_duplicate_delivery(node_execution_id)
            return
        if take_over:
            node_log_line(claimed.execution_id, claimed.id, claimed.node_id,
                          f"taken over by {worker or 'another worker'}: the worker running it "
                          "was lost", "warning")  # fmt: skip
        if tracing.ENABLED:
            traces.waited_spans(claimed, published_in)
        if not _may_run(claimed, lease):
            return
        outcome = _block_outcome(claimed)
        quotas.count(claimed.user_id, outcome.seconds)
        metrics.NODE_RUN_SECONDS.labels(claimed.block).observe(outcome.seconds)
        if outcome.parked:
            return  # parked: its wait's decision resumes it (waits.py)
        if outcome.transient and claimed.retries_left > 0:
            delay = retry_delay(
                claimed.attempt,
                settings.ENGINE_RETRY_BASE_SECONDS,
                settings.ENGINE_RETRY_MAX_SECONDS,
                random.random(),
            )
            node_log_line(claimed.execution_id, claimed.id, claimed.node_id,
                          f"attempt {claimed.attempt} failed; retrying in {delay:.1f} s "
                          f"({claimed.retries_left} retries left)", "warning")  # fmt: skip
            raise RetryNode(delay)
        node_complete(claimed, outcome, lease)
    finally:
        lease.release()  # unless the completion's event call dropped it already


def _block_outcome(claimed: ClaimedNode) -> Outcome:
    """A dry run's node of a block that leaves the process is simulated (dry_runs.py)."""
    if not tracing.ENABLED:
        return dry_run_outcome(claimed) or block_run(claimed)
    with traces.node_span(claimed) as span:
        outcome = dry_run_outcome(claimed) or block_run(claimed)
        traces.ended(span, outcome)
    return outcome


def _may_run(claimed: ClaimedNode, lease: NodeLease) -> bool:
    """What a claimed node must pass before its block runs: a person's approval (safe mode),
    its run's budget, its user's worker time, its charge. False when it does not run now
    (parked, failed, or stopped meanwhile). A dry run asks no one and pays nothing."""
    if not claimed.dry_run:
        if approval_needed(claimed):
            return False  # parked for a person's approval (safe mode): nothing charged
        if budget_review_needed(claimed):
            return False  # parked: the run tree's budget would be passed (run_budgets.py)
        refused = refused_in_review(claimed) or budget_refused(claimed)
        if refused:
            node_complete(claimed, Outcome(error=refused), lease)
            return False
    over_budget = quotas.budget_left(claimed.user_id)
    if over_budget:
        node_fail_unpaid(claimed, over_budget)
        return False
    if claimed.dry_run:
        return True
    try:
        return _charge(claimed)
    except InsufficientCredits as exc:
        node_fail_unpaid(claimed, str(exc))
        return False


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
