from django.db.models import F
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import rendered
from common.pagination import Pagination, paginated
from graphs.serializers import (
    GraphDocumentSerializer,
    GraphSerializer,
    GraphVersionSerializer,
    PresetSerializer,
    PresetWriteSerializer,
)
from idempotency.services import SCHEMA_PARAMETER as IDEMPOTENCY_KEY
from idempotency.services import idempotent

from .models import GraphVersion
from .selectors import (
    graph_get,
    graph_record,
    graphs_of,
    preset_get,
    preset_record,
    presets_of,
    version_get,
)
from .services import (
    graph_create,
    graph_delete,
    graph_update,
    preset_create,
    preset_delete,
    preset_update,
)


def version_param(request) -> int | None:
    raw = request.query_params.get("version")
    if raw in (None, ""):
        return None
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise ValidationError({"version": "must be a positive integer"})
    return int(raw)


class GraphListApi(APIView):
    @extend_schema(responses={200: paginated(GraphSerializer)}, operation_id="graphs_list")
    def get(self, request):
        paginator = Pagination()
        graphs = paginator.paginate_queryset(graphs_of(request.user), request, view=self)
        versions = {  # the latest version of each graph on the page, and no other
            (v.graph_id, v.version): v
            for v in GraphVersion.objects.filter(
                graph__in=graphs, version=F("graph__latest_version")
            )
            .select_related("graph")
            .prefetch_related("nodes", "links")
        }
        records = [graph_record(versions[(g.pk, g.latest_version)]) for g in graphs]
        return paginator.get_paginated_response(rendered(GraphSerializer, records, many=True))

    @extend_schema(
        request=GraphDocumentSerializer,
        responses={201: GraphSerializer},
        parameters=[IDEMPOTENCY_KEY],
    )
    @idempotent
    def post(self, request):
        version = graph_create(owner=request.user, document=request.data)
        return Response(
            rendered(GraphSerializer, graph_record(version)), status=status.HTTP_201_CREATED
        )


class GraphDetailApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("version", int, description="a version other than the latest")
        ],
        responses={200: GraphSerializer},
    )
    def get(self, request, graph_id):
        graph = graph_get(user=request.user, graph_id=graph_id)
        version = version_get(graph=graph, version=version_param(request))
        return Response(rendered(GraphSerializer, graph_record(version)))

    @extend_schema(request=GraphDocumentSerializer, responses={200: GraphSerializer})
    def put(self, request, graph_id):
        graph = graph_get(user=request.user, graph_id=graph_id)
        version = graph_update(graph=graph, document=request.data)
        return Response(rendered(GraphSerializer, graph_record(version)))

    @extend_schema(responses={204: None})
    def delete(self, request, graph_id):
        graph_delete(graph=graph_get(user=request.user, graph_id=graph_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class GraphVersionListApi(APIView):
    @extend_schema(responses={200: paginated(GraphVersionSerializer)})
    def get(self, request, graph_id):
        graph = graph_get(user=request.user, graph_id=graph_id)
        paginator = Pagination()
        page = paginator.paginate_queryset(
            graph.versions.order_by("-version").values(
                "version", "name", "description", "created_at"
            ),
            request,
            view=self,
        )
        return paginator.get_paginated_response(rendered(GraphVersionSerializer, page, many=True))


class PresetListApi(APIView):
    @extend_schema(responses={200: paginated(PresetSerializer)}, operation_id="presets_list")
    def get(self, request, graph_id):
        graph = graph_get(user=request.user, graph_id=graph_id)
        paginator = Pagination()
        page = paginator.paginate_queryset(presets_of(graph), request, view=self)
        records = [preset_record(p) for p in page]
        return paginator.get_paginated_response(rendered(PresetSerializer, records, many=True))

    @extend_schema(request=PresetWriteSerializer, responses={201: PresetSerializer})
    def post(self, request, graph_id):
        graph = graph_get(user=request.user, graph_id=graph_id)
        body = PresetWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        preset = preset_create(graph=graph, values=dict(body.validated_data))
        return Response(
            rendered(PresetSerializer, preset_record(preset)), status=status.HTTP_201_CREATED
        )


class PresetDetailApi(APIView):
    @extend_schema(responses={200: PresetSerializer})
    def get(self, request, preset_id):
        preset = preset_get(user=request.user, preset_id=preset_id)
        return Response(rendered(PresetSerializer, preset_record(preset)))

    @extend_schema(request=PresetWriteSerializer(partial=True), responses={200: PresetSerializer})
    def patch(self, request, preset_id):
        preset = preset_get(user=request.user, preset_id=preset_id)
        body = PresetWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        preset = preset_update(preset=preset, values=dict(body.validated_data))
        return Response(rendered(PresetSerializer, preset_record(preset)))

    @extend_schema(responses={204: None})
    def delete(self, request, preset_id):
        preset_delete(preset=preset_get(user=request.user, preset_id=preset_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
