"""The shapes of runs and node executions in the API."""

from rest_framework import serializers

from common.api import budget_field


class ExecuteRequestSerializer(serializers.Serializer):
    inputs = serializers.DictField(required=False, default=dict)
    version = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    preset = serializers.UUIDField(
        required=False,
        allow_null=True,
        help_text="a preset of this graph: its inputs, then `inputs` on top; its version "
        "unless `version` is given",
    )
    budget = budget_field(
        "credits the run (and its sub-graph runs) may spend; a paid node that would "
        "pass it waits for your review. Default: the preset's, else none"
    )
    dry_run = serializers.BooleanField(
        required=False,
        default=False,
        help_text="simulate every block that leaves the process (models, requests, reviews); "
        "run the pure ones; charge and send nothing",
    )


class NodeExecutionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    node_id = serializers.CharField()
    block = serializers.CharField()
    status = serializers.CharField()
    input_data = serializers.JSONField()
    output_data = serializers.JSONField()
    error = serializers.CharField(allow_null=True)
    attempts = serializers.IntegerField()
    cost = serializers.IntegerField()
    task_id = serializers.CharField(allow_null=True)
    worker = serializers.CharField(allow_null=True, help_text="the Celery worker that ran it")
    queued_at = serializers.DateTimeField(allow_null=True)
    started_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    reused_from = serializers.IntegerField(
        allow_null=True, help_text="a re-run's copy: the node execution whose outputs it reused"
    )


class ExecutionSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    graph_id = serializers.UUIDField()
    graph_version = serializers.IntegerField()
    status = serializers.CharField()
    inputs = serializers.JSONField()
    outputs = serializers.JSONField()
    error = serializers.CharField(allow_null=True)
    stats = serializers.JSONField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    parent_execution_id = serializers.UUIDField(allow_null=True)
    parent_node_execution_id = serializers.IntegerField(allow_null=True)
    schedule_id = serializers.UUIDField(allow_null=True, help_text="the schedule that started it")
    budget = serializers.IntegerField(allow_null=True, help_text="the run tree's budget, credits")
    dry_run = serializers.BooleanField(help_text="a dry run: simulated, nothing charged or sent")
    rerun_of = serializers.UUIDField(allow_null=True, help_text="the run this one re-runs")
    trace_id = serializers.CharField(
        allow_null=True,
        help_text="the OpenTelemetry trace of the run tree (32 hex digits); null when the "
        "operator does not trace",
    )
    node_executions = NodeExecutionSerializer(
        many=True,
        required=False,
        help_text="the first 500; the rest at node_executions_next. A value over 64 KiB of "
        'JSON is {"$preview", "$chars", "$href"}: $href has it whole',
    )
    node_executions_next = serializers.CharField(
        allow_null=True, required=False, help_text="the next page of node executions"
    )


class ReviewSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    kind = serializers.CharField(
        help_text="review: a human_review node; approval: safe mode, before a sensitive node"
    )
    execution_id = serializers.UUIDField()
    graph_id = serializers.UUIDField()
    node_id = serializers.CharField()
    node_execution_id = serializers.IntegerField()
    data = serializers.JSONField(  # type: ignore[assignment]  # the field, not Serializer.data
        help_text="what to decide on (an approval: the node's inputs)"
    )
    message = serializers.CharField(help_text="the instructions for the reviewer")
    editable = serializers.BooleanField()
    status = serializers.CharField(help_text="pending, approved, rejected or timed_out")
    created_at = serializers.DateTimeField(help_text="waiting since")
    deadline = serializers.DateTimeField(allow_null=True)
    decided_at = serializers.DateTimeField(allow_null=True)
    decision_message = serializers.CharField(help_text="the reviewer's message")
    edited_data = serializers.JSONField(
        allow_null=True, help_text="the reviewer's version of `data`, if they edited it"
    )


class ApproveSerializer(serializers.Serializer):
    data = serializers.JSONField(  # type: ignore[assignment]  # the field, not Serializer.data
        required=False, help_text="the edited data (editable only)"
    )
    message = serializers.CharField(required=False, allow_blank=True, max_length=10_000)


class RejectSerializer(serializers.Serializer):
    message = serializers.CharField(required=False, allow_blank=True, max_length=10_000)


class EventSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=200)
    payload = serializers.JSONField(required=False, allow_null=True, default=None)


class EventWokenSerializer(serializers.Serializer):
    woken = serializers.IntegerField(help_text="how many waiting nodes it woke")


class RerunRequestSerializer(serializers.Serializer):
    from_nodes = serializers.ListField(
        child=serializers.CharField(max_length=64), max_length=20_000,
        help_text="run these and everything downstream; reuse the rest",
    )  # fmt: skip
    version = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, help_text="default: the run's own"
    )
    inputs = serializers.DictField(required=False, help_text="graph inputs to override")


class TokenPricedNodeSerializer(serializers.Serializer):
    node_id = serializers.CharField()
    model = serializers.CharField()
    answer_tokens = serializers.IntegerField(help_text="max_tokens for each call it may make")
    max_cost = serializers.IntegerField(help_text="those tokens at the model's price")


class RerunPreviewSerializer(serializers.Serializer):
    reused = serializers.ListField(child=serializers.CharField())
    run = serializers.ListField(child=serializers.CharField())
    sensitive = serializers.ListField(
        child=serializers.CharField(), help_text="nodes that run and act on the world again"
    )
    min_cost = serializers.IntegerField(help_text="per-run prices of the nodes that run")
    max_cost = serializers.IntegerField(
        help_text="min_cost and the most the token-priced nodes' answers may cost"
    )
    token_priced = TokenPricedNodeSerializer(many=True)


class ReplayRequestSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=["FAILED", "CANCELLED", "COMPLETED"], default="FAILED",
        help_text="replay the graph's runs that ended so",
    )  # fmt: skip
    since = serializers.DateTimeField(required=False, allow_null=True)
    until = serializers.DateTimeField(required=False, allow_null=True)
    version = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, help_text="default: each run's own"
    )
    # `from` is a Python keyword: the field is declared under it below.


ReplayRequestSerializer._declared_fields["from"] = serializers.ChoiceField(
    choices=["failed_nodes", "start"], default="failed_nodes",
    help_text="re-run each run's failed nodes (reusing the rest), or run it from the start",
)  # fmt: skip


class ReplaySerializer(serializers.Serializer):
    id = serializers.UUIDField()
    graph_id = serializers.UUIDField()
    request = serializers.JSONField()
    cancelled = serializers.BooleanField()
    counts = serializers.DictField(
        child=serializers.IntegerField(), help_text="its runs by status, and not_started"
    )
    runs = serializers.ListField(child=serializers.UUIDField())
    not_started = serializers.DictField(help_text="runs that could not be replayed, and why")
    done = serializers.BooleanField(help_text="every run of the batch has ended")
    created_at = serializers.DateTimeField()


class ReplayPreviewSerializer(serializers.Serializer):
    runs = serializers.IntegerField()
    reused = serializers.IntegerField(help_text="node executions reused, in all")
    run = serializers.IntegerField(help_text="nodes that run again, in all")
    sensitive = serializers.ListField(child=serializers.CharField())
    min_cost = serializers.IntegerField()
    max_cost = serializers.IntegerField()
