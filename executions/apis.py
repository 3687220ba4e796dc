import django_filters
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import rendered
from common.pagination import Pagination, paginated
from executions.serializers import (
    ExecuteRequestSerializer,
    ExecutionSerializer,
    NodeExecutionSerializer,
)
from graphs.selectors import graph_get, preset_for_run
from idempotency.services import SCHEMA_PARAMETER as IDEMPOTENCY_KEY
from idempotency.services import idempotent

from . import control
from .models import GRAPH_STATUSES, GraphExecution, NodeExecution
from .runs import execution_create
from .selectors import (
    NODES_INLINE,
    execution_detail,
    execution_get,
    execution_record,
    execution_records,
    executions_of,
    node_execution_record,
    node_page,
)
from .stats import NOTHING_RAN

NODES_PAGE_MAX = 1000


class ExecutionFilter(django_filters.FilterSet):
    graph = django_filters.UUIDFilter(field_name="graph_id")
    status = django_filters.ChoiceFilter(choices=GRAPH_STATUSES)

    class Meta:
        model = GraphExecution
        fields = ["graph", "status"]


class GraphExecuteApi(APIView):
    """Starts a run and answers at once with its record; the run goes on in the workers."""

    @extend_schema(
        request=ExecuteRequestSerializer,
        responses={201: ExecutionSerializer},
        parameters=[IDEMPOTENCY_KEY],
    )
    @idempotent
    def post(self, request, graph_id):
        graph = graph_get(user=request.user, graph_id=graph_id)
        body = ExecuteRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        preset_id = body.validated_data.get("preset")
        execution = execution_create(
            user=request.user,
            graph=graph,
            inputs=body.validated_data["inputs"],
            version=body.validated_data.get("version"),
            preset=preset_for_run(graph=graph, preset_id=preset_id) if preset_id else None,
            budget=body.validated_data.get("budget"),
            dry_run=body.validated_data["dry_run"],
        )
        record = execution_record(execution, live=NOTHING_RAN)  # it was created just now
        return Response(rendered(ExecutionSerializer, record), status=status.HTTP_201_CREATED)


class ExecutionListApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("graph", OpenApiTypes.UUID, description="only runs of this graph"),
            OpenApiParameter("status", str, enum=[s for s, _ in GRAPH_STATUSES]),
        ],
        responses={200: paginated(ExecutionSerializer)},
        operation_id="executions_list",
    )
    def get(self, request):
        filtered = ExecutionFilter(request.query_params, queryset=executions_of(request.user))
        if not filtered.is_valid():
            raise ValidationError(filtered.errors)
        paginator = Pagination()
        page = paginator.paginate_queryset(
            filtered.qs.select_related("graph_version"), request, view=self
        )
        records = execution_records(page)
        return paginator.get_paginated_response(rendered(ExecutionSerializer, records, many=True))


class ExecutionDetailApi(APIView):
    @extend_schema(responses={200: ExecutionSerializer})
    def get(self, request, execution_id):
        record = execution_detail(user=request.user, execution_id=execution_id)
        return Response(rendered(ExecutionSerializer, record))


class NodePageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.CharField(allow_null=True)
    previous = serializers.CharField(allow_null=True)
    results = NodeExecutionSerializer(many=True)


class ExecutionNodeListApi(APIView):
    """The run's node executions in id order, a page at a time (`?after=ID&limit=N`)."""

    @extend_schema(
        parameters=[
            OpenApiParameter("after", int, description="the last id of the page before"),
            OpenApiParameter("limit", int, description=f"at most {NODES_PAGE_MAX}"),
        ],
        responses={200: NodePageSerializer},
        operation_id="executions_nodes_list",
    )
    def get(self, request, execution_id):
        execution = execution_get(user=request.user, execution_id=execution_id)
        after = _whole_number(request.query_params.get("after"), "after", default=None)
        limit = min(
            _whole_number(request.query_params.get("limit"), "limit", default=NODES_INLINE)
            or NODES_INLINE,
            NODES_PAGE_MAX,
        )
        page, next_after = node_page(execution.pk, after=after, limit=limit)
        next_url = None
        if next_after is not None:
            next_url = request.build_absolute_uri(
                f"{request.path}?after={next_after}&limit={limit}"
            )
        count = NodeExecution.objects.filter(execution_id=execution.pk).count()
        body = {"count": count, "next": next_url, "previous": None, "results": page}
        return Response(rendered(NodePageSerializer, body))


class ExecutionNodeDetailApi(APIView):
    """One node execution, with its whole input and output however large."""

    @extend_schema(responses={200: NodeExecutionSerializer})
    def get(self, request, execution_id, node_execution_id):
        execution = execution_get(user=request.user, execution_id=execution_id)
        ne = NodeExecution.objects.filter(execution_id=execution.pk, pk=node_execution_id).first()
        if ne is None:
            raise Http404("node execution not found")
        return Response(rendered(NodeExecutionSerializer, node_execution_record(ne)))


class ExecutionOutputsApi(APIView):
    """The run's whole `outputs` (the record shows a preview of large ones)."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request, execution_id):
        return Response(execution_get(user=request.user, execution_id=execution_id).outputs)


def _whole_number(raw: str | None, name: str, *, default: int | None) -> int | None:
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise ValidationError({name: "must be a whole number"})
    return int(raw)


class ExecutionControlApi(APIView):
    """POST cancel / pause / resume: answers the run as it stands after the action, or 409
    when the run is not in a state the action applies to."""

    actions = {
        "cancel": control.execution_cancel,
        "pause": control.execution_pause,
        "resume": control.execution_resume,
    }
    action = ""

    @extend_schema(request=None, responses={200: ExecutionSerializer})
    def post(self, request, execution_id):
        execution = execution_get(user=request.user, execution_id=execution_id)
        self.actions[self.action](execution.pk)
        execution.refresh_from_db()
        return Response(rendered(ExecutionSerializer, execution_record(execution)))
