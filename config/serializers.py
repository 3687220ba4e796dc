"""Shapes for the OpenAPI schema and for checking simple request fields.

Graph documents are checked by graphs.validation (it reports node and pin); these
serializers describe the shapes for the docs and check the small request bodies."""

from rest_framework import serializers


class NodeSerializer(serializers.Serializer):
    id = serializers.CharField(max_length=64)
    block = serializers.CharField()
    input_default = serializers.DictField(required=False)
    metadata = serializers.JSONField(required=False)
    timeout = serializers.IntegerField(
        required=False, allow_null=True, help_text="Seconds; default: the block's own limit."
    )


class LinkSerializer(serializers.Serializer):
    source_id = serializers.CharField()
    source_name = serializers.CharField()
    sink_id = serializers.CharField()
    sink_name = serializers.CharField()
    is_static = serializers.BooleanField(required=False, default=False)


class GraphDocumentSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True)
    nodes = NodeSerializer(many=True)
    links = LinkSerializer(many=True, required=False)
    webhook_url = serializers.URLField(
        required=False, allow_blank=True, help_text="Run notifications are POSTed here, signed."
    )


class GraphSerializer(GraphDocumentSerializer):
    id = serializers.UUIDField(read_only=True)
    version = serializers.IntegerField(read_only=True)
    latest_version = serializers.IntegerField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)


class GraphVersionSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    created_at = serializers.DateTimeField()


class ExecuteRequestSerializer(serializers.Serializer):
    inputs = serializers.DictField(required=False, default=dict)
    version = serializers.IntegerField(required=False, allow_null=True, min_value=1)


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


class BlockSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    category = serializers.CharField()
    input_schema = serializers.JSONField()
    output_schema = serializers.JSONField()
    static_output = serializers.BooleanField()
    cost = serializers.IntegerField(help_text="Credits per run, charged before it runs.")
    cost_per_second = serializers.FloatField(help_text="Credits per second, settled after.")
    cost_per_mib = serializers.FloatField(help_text="Credits per MiB of output, settled after.")


def paginated(item: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """The {count, next, previous, results} page of `item`, for the schema."""
    return type(
        f"Paginated{item.__name__.removesuffix('Serializer')}List",
        (serializers.Serializer,),
        {
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": item(many=True),
        },
    )
