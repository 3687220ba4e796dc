"""Claiming a node execution: QUEUED (or parked and woken) -> RUNNING by compare-and-set,
read into a ClaimedNode."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from blocks.registry import get_block_class
from blocks.waiting import Wake
from common import metrics
from credits.services import NodeCharge

from . import events
from .budgets import node_time_limit, retry_limit
from .engine import Status
from .events import node_event
from .finishing import cancel_if_run_ended
from .leases import NodeLease
from .models import NodeExecution, Wait
from .plans import plan_for_version

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClaimedNode:
    """A node execution this delivery claimed, read by name from _CLAIM_SQL's row."""

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
    # The node's latest wait, decided (waits.py), if it parked before: the block resumes
    # with it (or, for a safe-mode approval, runs as approved); and how many waits it had.
    # The run tree's budget in credits, if it has one (run_budgets.py).
    budget: int | None = None
    dry_run: bool = False  # blocks that leave the process are simulated, nothing charged
    wake: Wake | None = None
    wakes: int = 0
    # Seconds since it was queued (traces); the wait it woke from: kind, parked, decided.
    queue_wait: float | None = None
    waited: tuple[str, datetime, datetime | None] | None = None

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
        return max(0, limit - (self.attempt - 1 - self.wakes))  # a wake is not a retry


# A take-over leaves alone a node that started this recently: its owner has claimed it and
# is about to take its lease (the two are separate steps).
TAKE_OVER_MARGIN_SECONDS = 2.0


# Asked just after a take-over's claim found the node too young to take: a moment later, by
# another clock. With the bare margin, a node the claim refused at 1.99 s could look 2.01 s
# old here, and its redelivered message was dropped as a duplicate, leaving the node RUNNING
# with no task until the watchdog's stall threshold.
JUST_STARTED_SLACK_SECONDS = 1.0


def just_started(node_execution_id: int) -> bool:
    """Whether a take-over's claim refused this RUNNING node for being too young to take (the
    task looks again once its lease could have lapsed)."""
    margin = TAKE_OVER_MARGIN_SECONDS + JUST_STARTED_SLACK_SECONDS
    return NodeExecution.objects.filter(
        id=node_execution_id,
        status=Status.RUNNING,
        started_at__gte=timezone.now() - timedelta(seconds=margin),
    ).exists()


def log_duplicate_delivery(node_execution_id: int) -> None:
    """A redelivered message whose node an earlier delivery already recorded: the usual
    sequel of a broker restart (README, "A broker restart while a task runs"). Said in the
    log so that the "Couldn't ack" Celery logs for the first delivery has its ending."""
    status = (
        NodeExecution.objects.filter(id=node_execution_id).values_list("status", flat=True).first()
    )
    log.info("duplicate delivery: node execution %s is already %s", node_execution_id, status)


# Claimable: a QUEUED node; a parked one whose latest wait is decided (woken); with
# `take_over`, a RUNNING one that did not start just now. The latest wait comes back with
# the row: a woken or taken-over node resumes from it.
_LATEST_WAIT = """(SELECT w.{column} FROM executions_wait AS w WHERE w.node_execution_id = ne.id
                   ORDER BY w.created_at DESC LIMIT 1)"""
_CLAIM_SQL = f"""
UPDATE executions_nodeexecution AS ne
   SET status = 'RUNNING', started_at = now(), attempts = ne.attempts + 1, worker = %s
  FROM executions_graphexecution AS ge
 WHERE ne.id = %s AND ge.id = ne.execution_id AND ge.status = 'RUNNING'
   AND (ne.status = 'QUEUED'
        OR (ne.status = 'RUNNING' AND %s
            AND ne.started_at < clock_timestamp() - make_interval(secs => %s))
        OR (ne.status IN ('WAITING', 'REVIEW')
            AND {_LATEST_WAIT.format(column="status")} <> 'pending'))
RETURNING ne.execution_id, ne.node_id, ne.block, ne.input_data,
          ge.graph_version_id, ge.user_id, ge.graph_id, ne.attempts AS attempt, ge.depth,
          ne.join_id IS NOT NULL AS in_chord, ge.parent_node_execution_id, ge.budget,
          ge.dry_run,
          EXTRACT(EPOCH FROM clock_timestamp() - ne.queued_at) AS queue_wait,
          {_LATEST_WAIT.format(column="id")} AS wait_id
"""


def _wake_of(node_execution_id: int, wait_id) -> dict[str, Any]:
    """The decided wait a claimed node resumes from, and how many waits it had."""
    if wait_id is None:
        return {}
    wait = Wait.objects.values(
        "kind", "status", "payload", "response", "created_at", "decided_at"
    ).get(pk=wait_id)
    wakes = (
        Wait.objects.filter(node_execution_id=node_execution_id)
        .exclude(kind=Wait.Kind.STEP)  # progress saved while running: no claim of its own
        .count()
    )
    wake = Wake(wait["kind"], wait["status"], wait["payload"], wait["response"])
    return {
        "wake": wake,
        "wakes": wakes,
        "waited": (wait["kind"], wait["created_at"], wait["decided_at"]),
    }


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
        values = cursor.fetchone()
        columns = [column.name for column in cursor.description] if values else []
    if values is None:
        cancel_if_run_ended(node_execution_id)
        return None
    row = dict(zip(columns, values, strict=True))  # by name: the statement says what is what
    waited = row.pop("queue_wait")
    wait_id = row.pop("wait_id")
    if isinstance(row["input_data"], str):
        row["input_data"] = json.loads(row["input_data"])
    claimed = ClaimedNode(
        id=node_execution_id,
        **row,
        **_wake_of(node_execution_id, wait_id),
        queue_wait=None if waited is None else max(0.0, float(waited)),
    )
    if claimed.queue_wait is not None and claimed.attempt == 1:  # a retry's includes its backoff
        metrics.NODE_QUEUE_WAIT_SECONDS.labels(claimed.block).observe(claimed.queue_wait)
    events.emit(
        claimed.execution_id,
        [node_event(claimed.execution_id, node_execution_id, claimed.node_id, Status.RUNNING)],
        lease=lease.taken_with_event() if lease is not None and not lease.held else None,
    )
    return claimed
