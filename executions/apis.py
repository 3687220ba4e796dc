import django_filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from config.pagination import Pagination
from config.serializers import ExecuteRequestSerializer, ExecutionSerializer, paginated
from credits.services import InsufficientCredits
from graphs.apis import invalid_graph_response
from graphs.selectors import graph_get
from graphs.validation import GraphInvalid
from idempotency.services import SCHEMA_PARAMETER as IDEMPOTENCY_KEY
from idempotency.services import idempotent

from . import control
from .models import GRAPH_STATUSES, GraphExecution
from .selectors import execution_detail, execution_get, execution_record, executions_of
from .services import execution_create


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
        try:
            execution = execution_create(
                user=request.user,
                graph=graph,
                inputs=body.validated_data["inputs"],
                version=body.validated_data.get("version"),
            )
        except GraphInvalid as exc:
            return invalid_graph_response(exc)
        except InsufficientCredits as exc:
            return Response(
                {"detail": str(exc), "balance": exc.balance, "cost": exc.cost},
                status=status.HTTP_402_PAYMENT_REQUIRED,
            )
        return Response(
            execution_record(execution, with_nodes=False), status=status.HTTP_201_CREATED
        )


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
        return paginator.get_paginated_response(
            [execution_record(e, with_nodes=False) for e in page]
        )


class ExecutionDetailApi(APIView):
    @extend_schema(responses={200: ExecutionSerializer})
    def get(self, request, execution_id):
        return Response(execution_detail(user=request.user, execution_id=execution_id))


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
        try:
            self.actions[self.action](execution.pk)
        except control.ConflictingState as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        execution.refresh_from_db()
        return Response(execution_record(execution, with_nodes=False))
