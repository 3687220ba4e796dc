"""The shapes of runs and node executions in the API."""

from rest_framework import serializers


class ExecuteRequestSerializer(serializers.Serializer):
    inputs = serializers.DictField(required=False, default=dict)
    version = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    preset = serializers.UUIDField(
        required=False,
        allow_null=True,
        help_text="a preset of this graph: its inputs, then `inputs` on top; its version "
        "unless `version` is given",
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
    node_executions = NodeExecutionSerializer(
        many=True,
        required=False,
        help_text="the first 500; the rest at node_executions_next. A value over 64 KiB of "
        'JSON is {"$preview", "$chars", "$href"}: $href has it whole',
    )
    node_executions_next = serializers.CharField(
        allow_null=True, required=False, help_text="the next page of node executions"
    )
