"""Re-run a run from some of its nodes, or preview what that would do: thin views over
reruns.py."""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import rendered

from .reruns import rerun_create, rerun_preview
from .selectors import execution_get, execution_record
from .serializers import (
    ExecutionSerializer,
    RerunPreviewSerializer,
    RerunRequestSerializer,
)
from .stats import NOTHING_RAN


class RerunApi(APIView):
    """A new run (`rerun_of`) reusing the outputs of everything not downstream of
    `from_nodes`: those are neither run nor charged again."""

    @extend_schema(request=RerunRequestSerializer, responses={201: ExecutionSerializer})
    def post(self, request, execution_id):
        execution = execution_get(user=request.user, execution_id=execution_id)
        body = RerunRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        rerun = rerun_create(user=request.user, execution=execution, **body.validated_data)
        record = execution_record(rerun, live=NOTHING_RAN if rerun.status == "QUEUED" else None)
        return Response(rendered(ExecutionSerializer, record), status=status.HTTP_201_CREATED)


class RerunPreviewApi(APIView):
    """What that re-run would reuse, run, fire again and at least cost; creates nothing."""

    @extend_schema(request=RerunRequestSerializer, responses={200: RerunPreviewSerializer})
    def post(self, request, execution_id):
        execution = execution_get(user=request.user, execution_id=execution_id)
        body = RerunRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        preview = rerun_preview(execution=execution, **body.validated_data)
        return Response(rendered(RerunPreviewSerializer, preview))
