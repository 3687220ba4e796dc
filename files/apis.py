"""`/api/files/`: upload (multipart), list, download and delete one's own files. Thin views
over services.py; another user's file is not found."""

from django.http import FileResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import rendered
from common.pagination import Pagination, paginated

from .models import StoredFile
from .services import file_delete, file_get, file_open, file_store, files_used


class FileUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="the file (multipart/form-data)")
    name = serializers.CharField(
        required=False, max_length=255, help_text="default: the uploaded file's name"
    )


class FileSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    content_type = serializers.CharField(help_text="sniffed from the bytes")
    size = serializers.IntegerField(help_text="bytes")
    sha256 = serializers.CharField()
    reference = serializers.JSONField(help_text='{"$file": id}: how graphs and inputs name it')
    execution_id = serializers.UUIDField(allow_null=True, help_text="the run that stored it")
    created_at = serializers.DateTimeField()


def file_record(stored: StoredFile) -> dict:
    return {
        "id": stored.pk,
        "name": stored.name,
        "content_type": stored.content_type,
        "size": stored.size,
        "sha256": stored.sha256,
        "reference": {"$file": str(stored.pk)},
        "execution_id": stored.execution_id,
        "created_at": stored.created_at,
    }


class FileListApi(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(responses={200: paginated(FileSerializer)}, operation_id="files_list")
    def get(self, request):
        paginator = Pagination()
        files = StoredFile.objects.filter(owner=request.user).order_by("-created_at")
        page = paginator.paginate_queryset(files, request, view=self)
        records = [file_record(f) for f in page]
        response = paginator.get_paginated_response(rendered(FileSerializer, records, many=True))
        response["X-Files-Bytes-Used"] = str(files_used(request.user.pk))
        return response

    @extend_schema(request={"multipart/form-data": FileUploadSerializer},
                   responses={201: FileSerializer})  # fmt: skip
    def post(self, request):
        body = FileUploadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        upload = body.validated_data["file"]
        stored = file_store(
            owner_id=request.user.pk,
            name=body.validated_data.get("name") or upload.name,
            content=upload,
        )
        return Response(
            rendered(FileSerializer, file_record(stored)), status=status.HTTP_201_CREATED
        )


class FileDetailApi(APIView):
    @extend_schema(
        responses={200: OpenApiResponse(description="the file's bytes, as an attachment")},
        operation_id="files_download",
    )
    def get(self, request, file_id):
        stored = file_get(owner_id=request.user.pk, file_id=file_id)
        response = FileResponse(
            file_open(stored), as_attachment=True, filename=stored.name,
            content_type=stored.content_type,
        )  # fmt: skip
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Security-Policy"] = "sandbox"
        return response

    @extend_schema(responses={204: None})
    def delete(self, request, file_id):
        file_delete(owner_id=request.user.pk, file_id=file_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class FileInfoApi(APIView):
    @extend_schema(responses={200: FileSerializer})
    def get(self, request, file_id):
        stored = file_get(owner_id=request.user.pk, file_id=file_id)
        return Response(rendered(FileSerializer, file_record(stored)))
