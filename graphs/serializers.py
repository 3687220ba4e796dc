"""The graph document and graph shapes, for the API's responses and schema. Documents are
checked by graphs.validation (it reports node and pin); these describe them."""

from rest_framework import serializers

from common.api import budget_field


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
    safe_mode = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Each node of a sensitive block waits for a person's approval before it runs.",
    )


class GraphSerializer(GraphDocumentSerializer):
    id = serializers.UUIDField(read_only=True)
    input_schema = serializers.JSONField(
        read_only=True,
        help_text="JSON Schema of the inputs a run of this version takes (its input nodes: "
        "names, types, descriptions, defaults, required); execute checks against it",
    )
    output_schema = serializers.JSONField(
        read_only=True, help_text="JSON Schema of a run's outputs (its output nodes)"
    )
    version = serializers.IntegerField(read_only=True)
    latest_version = serializers.IntegerField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)


class GraphVersionSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    created_at = serializers.DateTimeField()


class PresetWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    inputs = serializers.DictField(required=False)
    graph_version = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    budget = budget_field("credits its runs may spend")


class PresetSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    graph_id = serializers.UUIDField()
    graph_version = serializers.IntegerField(
        allow_null=True, help_text="the version its runs use; null: the latest"
    )
    name = serializers.CharField()
    inputs = serializers.DictField(
        help_text='graph inputs by name; {"$credential": NAME} names a secret'
    )
    budget = serializers.IntegerField(allow_null=True, help_text="credits its runs may spend")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
