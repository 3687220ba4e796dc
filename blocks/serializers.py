"""The shape of a block in the catalogue API."""

from rest_framework import serializers


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
