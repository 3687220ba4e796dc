"""Replay a graph's failed runs in bulk, preview it, follow and cancel the batch: thin views
over replays.py."""

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import rendered
from graphs.selectors import graph_get

from .models import ReplayBatch
from .replays import replay_cancel, replay_create, replay_preview, replay_record
from .serializers import ReplayPreviewSerializer, ReplayRequestSerializer, ReplaySerializer


class ReplayApi(APIView):
    """A replay batch: 201 when this request made it, 200 with the batch the same request
    made before."""

    @extend_schema(
        request=ReplayRequestSerializer, responses={201: ReplaySerializer, 200: ReplaySerializer}
    )
    def post(self, request, graph_id):
        graph = graph_get(user=request.user, graph_id=graph_id)
        body = ReplayRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        batch, made = replay_create(user=request.user, graph=graph, request=body.validated_data)
        code = status.HTTP_201_CREATED if made else status.HTTP_200_OK
        return Response(rendered(ReplaySerializer, replay_record(batch)), status=code)


class ReplayPreviewApi(APIView):
    @extend_schema(request=ReplayRequestSerializer, responses={200: ReplayPreviewSerializer})
    def post(self, request, graph_id):
        graph = graph_get(user=request.user, graph_id=graph_id)
        body = ReplayRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        totals = replay_preview(graph=graph, request=body.validated_data)
        return Response(rendered(ReplayPreviewSerializer, totals))


def _batch_of(user, replay_id) -> ReplayBatch:
    batch = ReplayBatch.objects.filter(pk=replay_id, user=user).first()
    if batch is None:
        raise Http404("replay batch not found")
    return batch


class ReplayDetailApi(APIView):
    @extend_schema(responses={200: ReplaySerializer})
    def get(self, request, replay_id):
        return Response(
            rendered(ReplaySerializer, replay_record(_batch_of(request.user, replay_id)))
        )


class ReplayCancelApi(APIView):
    """Cancels the batch's unfinished runs."""

    @extend_schema(request=None, responses={200: ReplaySerializer})
    def post(self, request, replay_id):
        batch = _batch_of(request.user, replay_id)
        replay_cancel(batch)
        batch.refresh_from_db()
        return Response(rendered(ReplaySerializer, replay_record(batch)))
