"""Graph executions and node executions. Status changes go through compare-and-set updates
with transitions.move (`filter(id=..., status__in=allowed).update(...)`), never save()."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models.functions import Now

from .engine import Status

NODE_STATUSES = [
    (s, s)
    for s in (
        Status.INCOMPLETE,
        Status.QUEUED,
        Status.RUNNING,
        Status.WAITING,
        Status.REVIEW,
        Status.COMPLETED,
        Status.FAILED,
        Status.CANCELLED,
    )
]
GRAPH_STATUSES = [
    (s, s)
    for s in (
        Status.QUEUED,
        Status.RUNNING,
        Status.PAUSED,
        Status.REVIEW,
        Status.COMPLETED,
        Status.FAILED,
        Status.CANCELLED,
    )
]


class GraphExecution(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    graph = models.ForeignKey("graphs.Graph", on_delete=models.CASCADE, related_name="executions")
    graph_version = models.ForeignKey(
        "graphs.GraphVersion", on_delete=models.CASCADE, related_name="executions"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="graph_executions"
    )
    status = models.CharField(max_length=16, choices=GRAPH_STATUSES, default=Status.QUEUED)
    inputs = models.JSONField(default=dict, blank=True)
    outputs = models.JSONField(default=dict, blank=True)
    error = models.TextField(null=True, blank=True)
    stats = models.JSONField(default=dict, blank=True)
    # Engine counters, changed only with F() updates in the transaction that changes the
    # node executions they count. active_count: node executions QUEUED or RUNNING plus
    # pending chord joins; the run is over when it reaches zero.
    # The run tree: a top-level run is its own root (its id, or null); a sub-graph run has
    # its root's. The tree's limits are counted and checked on the root's row, before
    # anything is written (limits.py): node executions of the whole tree, its sub-graph runs.
    root_id = models.UUIDField(db_index=True, null=True, blank=True)
    node_count = models.PositiveIntegerField(default=0)
    # The caps in force when the tree started (ENGINE_MAX_NODE_EXECUTIONS,
    # ENGINE_MAX_SUBGRAPH_RUNS).
    node_limit = models.PositiveIntegerField(default=10_000)
    subgraph_count = models.PositiveIntegerField(default=0)
    subgraph_limit = models.PositiveIntegerField(default=100)
    # The wall-clock limit in force when the run was created (ENGINE_MAX_EXECUTION_SECONDS),
    # and when it runs out: set at start, moved on by the time spent paused.
    time_limit = models.PositiveIntegerField(default=6 * 3600)
    deadline = models.DateTimeField(null=True, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    # Last time a node of this run finished or was queued: the watchdog's sign of life.
    progressed_at = models.DateTimeField(null=True, blank=True)
    # A sub-graph run: the agent_executor node execution waiting for it, and its depth.
    parent_node_execution = models.ForeignKey(
        "NodeExecution",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="child_executions",
    )
    depth = models.PositiveSmallIntegerField(default=0)
    # The schedule that started this run, if one did (its occurrence names the fire time).
    schedule = models.ForeignKey(
        "schedules.Schedule",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="executions",
    )
    # The run tree's budget in credits (every run of the tree holds the root's): a paid node
    # that would take the tree's spend past it waits for a person's review (run_budgets.py).
    budget = models.PositiveIntegerField(null=True, blank=True)
    # A dry run: blocks that leave the process are simulated, nothing is charged or sent
    # (its sub-graph runs are dry too).
    dry_run = models.BooleanField(default=False)
    # A re-run (reruns.py): the run it re-runs, and the nodes it runs (every other node's
    # completed executions are copied from that run as `reused`).
    rerun_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns"
    )
    rerun_nodes = models.JSONField(null=True, blank=True)
    # The replay batch (replays.py) that started this run, if one did.
    replay_batch = models.ForeignKey(
        "ReplayBatch", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    # The W3C trace context the run started in (common/tracing.py), "" when tracing was
    # off: its trace id is in the record, and messages sent for the run from outside its
    # trace (a review's wake) continue it.
    traceparent = models.CharField(max_length=64, blank=True, default="")
    active_count = models.IntegerField(default=0)
    # Of the active count, node executions parked (WAITING or REVIEW with an undecided wait),
    # and of those, reviews: the run is REVIEW when all that is active is parked and a
    # review is among it (engine.awaits_review). Changed with active_count, by F().
    parked_count = models.IntegerField(default=0)
    review_count = models.IntegerField(default=0)
    unhandled_error_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["user", "-created_at"]),
            models.Index(fields=["graph", "-created_at"]),
            models.Index(fields=["status", "progressed_at"]),
            models.Index(fields=["status", "deadline"]),
            models.Index(fields=["status", "ended_at"]),
            # A user's top-level runs by status, oldest first: the per-user cap's count and
            # the next waiting run, on every run's start and end, whatever the history.
            models.Index(
                fields=["user", "status", "created_at"],
                condition=models.Q(depth=0),
                name="top_runs_of_user",
            ),
        ]
        ordering = ["-created_at"]

    def __str__(self):
        return f"execution {self.id} ({self.status})"


class NodeExecution(models.Model):
    # A chain hop inserts rows with raw SQL (chain_hop._SINGLE_HOP_SQL): a new column needs a
    # value there too (tests/test_engine.py checks the two agree).
    # Sequential ids give first-in-first-out order when values pair with waiting executions.
    id = models.BigAutoField(primary_key=True)
    execution = models.ForeignKey(
        GraphExecution, on_delete=models.CASCADE, related_name="node_executions"
    )
    node_id = models.CharField(max_length=64)
    block = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=NODE_STATUSES, default=Status.INCOMPLETE)
    input_data = models.JSONField(default=dict, blank=True)
    output_data = models.JSONField(default=dict, blank=True)
    error = models.TextField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    cost = models.BigIntegerField(default=0)
    task_id = models.CharField(max_length=64, null=True, blank=True)
    # The Celery worker (node name, e.g. worker@host) that last claimed it.
    worker = models.CharField(max_length=200, blank=True, default="")
    # Set once this execution's outputs have travelled its links (a chord join does it for
    # its members); claiming it with compare-and-set makes a repeated join harmless.
    propagated = models.BooleanField(default=False)
    # The chord this execution was dispatched in, if any: lets a lost join be re-driven.
    join_id = models.UUIDField(null=True, blank=True, db_index=True)
    # A re-run's copy of a node execution it reused (not run, not charged): the original.
    reused_from = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["execution", "id"]),
            # Waiting executions of one node, oldest first: the pairing lookup.
            models.Index(
                fields=["execution", "node_id", "id"],
                condition=models.Q(status="INCOMPLETE"),
                name="node_exec_waiting",
            ),
            models.Index(fields=["status", "queued_at"]),
        ]
        ordering = ["id"]

    def __str__(self):
        return f"{self.node_id} #{self.pk} ({self.status})"


class Wait(models.Model):
    """What a parked node execution waits for (waits.py): a child run, a timer, an event, or
    a person's review (a block's, or safe mode's approval before a sensitive node runs).
    Decided once, by compare-and-set from `pending`; then the node is claimed back by a
    worker, which resumes its block with the decision (the node's latest wait)."""

    class Kind(models.TextChoices):
        SUBGRAPH = "subgraph"
        TIMER = "timer"
        EVENT = "event"
        REVIEW = "review"  # a human_review node: the reviewer may approve edited data
        APPROVAL = "approval"  # safe mode: may this sensitive node run with these inputs?
        # Not a wait: a running block's committed progress (RunContext.checkpoint), decided
        # from the start, which a take-over resumes from.
        STEP = "step"
        # A running block that committed a step while its run was paused: parked there with
        # that step, woken by the resume (a long agent loop stops at its next step).
        PAUSE = "pause"
        # A review: the run tree's budget would be passed by this node's charge.
        BUDGET = "budget"

    class State(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"
        TIMED_OUT = "timed_out"
        WOKEN = "woken"  # its child run ended, its timer fired, its event came
        CANCELLED = "cancelled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    node_execution = models.ForeignKey(NodeExecution, on_delete=models.CASCADE, related_name="+")
    execution = models.ForeignKey(GraphExecution, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    node_id = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    # An event's key; a sub-graph wait's child run.
    key = models.CharField(max_length=200, blank=True, default="")
    child_execution_id = models.UUIDField(null=True, blank=True)
    # A review: what to decide on, the instructions, whether the data may be edited, and
    # what its deadline decides (approve, reject or fail).
    data = models.JSONField(null=True, blank=True)
    message = models.TextField(blank=True, default="")
    editable = models.BooleanField(default=False)
    on_timeout = models.CharField(max_length=8, blank=True, default="fail")
    # When the watchdog decides it `timed_out` (a timer's is its time; null: never).
    deadline = models.DateTimeField(null=True, blank=True)
    # What the decision carries to the block: edited data, the event's payload, the child
    # run's end; and the reviewer's message.
    payload = models.JSONField(null=True, blank=True)
    response = models.TextField(blank=True, default="")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["node_execution", "-created_at"]),
            models.Index(
                fields=["deadline"], condition=models.Q(status="pending"), name="wait_deadline"
            ),
            models.Index(
                fields=["user", "key"],
                condition=models.Q(status="pending", kind="event"),
                name="wait_event_key",
            ),
            models.Index(fields=["user", "kind", "status", "-created_at"]),
            models.Index(fields=["execution", "status"]),
        ]
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.kind} wait of {self.node_id} ({self.status})"


class ReplayBatch(models.Model):
    """A graph's ended runs run again in bulk (replays.py): the request that made it (the
    same request by the same user makes one batch), its runs (GraphExecution.replay_batch),
    the runs that could not start and why."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    graph = models.ForeignKey("graphs.Graph", on_delete=models.CASCADE, related_name="+")
    request_key = models.CharField(max_length=64)
    request = models.JSONField(default=dict)
    not_started = models.JSONField(default=dict, blank=True)
    cancelled = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "replay batches"
        constraints = [
            models.UniqueConstraint(fields=["user", "request_key"], name="one_batch_per_request")
        ]
        ordering = ["-created_at"]

    def __str__(self):
        return f"replay {self.pk} of graph {self.graph_id}"


class StaticInput(models.Model):
    """The last value a static link delivered to a node in one execution; every later
    execution of that node reuses it."""

    execution = models.ForeignKey(GraphExecution, on_delete=models.CASCADE, related_name="+")
    node_id = models.CharField(max_length=64)
    pin = models.CharField(max_length=200)
    value = models.JSONField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["execution", "node_id", "pin"], name="static_input_unique"
            )
        ]

    def __str__(self):
        return f"{self.node_id}.{self.pin} of {self.execution_id}"


class NodeLogLine(models.Model):
    """A line a node execution logged: its block (RunContext.log) or the engine (retries,
    take-overs, waits). Capped per node execution (ENGINE_MAX_NODE_LOG_LINES), secrets
    redacted; deleted with their node execution (node_logs.py)."""

    id = models.BigAutoField(primary_key=True)
    node_execution = models.ForeignKey(
        NodeExecution, on_delete=models.CASCADE, related_name="log_lines"
    )
    level = models.CharField(max_length=8, default="info")
    message = models.TextField()
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        indexes = [models.Index(fields=["node_execution", "id"])]

    def __str__(self):
        return f"{self.level}: {self.message[:60]}"


class Recovery(models.Model):
    """A step the watchdog took to get a stalled run going again (kept for operators)."""

    execution = models.ForeignKey(GraphExecution, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=32)
    detail = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "recoveries"
        indexes = [models.Index(fields=["-created_at"])]

    def __str__(self):
        return f"{self.kind} of {self.execution_id}"


class OutboxMessage(models.Model):
    """A message a committed transaction decided to publish (outbox.py): written in that
    transaction, deleted once the broker took it. What is still here after a few seconds
    (the broker was down, the process died after its commit) the relay sends."""

    id = models.BigAutoField(primary_key=True)
    kind = models.CharField(max_length=16)
    body = models.JSONField()
    created_at = models.DateTimeField(db_default=Now())

    def __str__(self):
        return f"{self.kind} #{self.pk}"
