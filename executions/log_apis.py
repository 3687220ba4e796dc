"""A node execution's log lines: a thin view over node_logs.py."""

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.views import APIView

from common.api import rendered
from common.pagination import Pagination, paginated

from .models import NodeExecution
from .node_logs import log_line_record, log_lines_of
from .selectors import execution_get


class LogLineSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    at = serializers.DateTimeField()
    level = serializers.ChoiceField(choices=["debug", "info", "warning", "error"])
    message = serializers.CharField(help_text="secrets redacted; at most 2,000 characters")


class NodeLogApi(APIView):
    """What a node execution logged (its block, and the engine: retries, take-overs,
    waits), oldest first; live as `log` events."""

    @extend_schema(responses={200: paginated(LogLineSerializer)})
    def get(self, request, execution_id, node_execution_id):
        execution = execution_get(user=request.user, execution_id=execution_id)
        if not NodeExecution.objects.filter(
            execution_id=execution.pk, pk=node_execution_id
        ).exists():
            raise Http404("node execution not found")
        paginator = Pagination()
        page = paginator.paginate_queryset(log_lines_of(node_execution_id), request, view=self)
        records = [log_line_record(line) for line in page]
        return paginator.get_paginated_response(rendered(LogLineSerializer, records, many=True))
