"""`/api/credentials/`: create, list names, delete. The value is write-only."""

import re

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import rendered
from common.pagination import Pagination, paginated

from .models import NAME_PATTERN, Credential
from .services import MAX_VALUE_CHARS, credential_create, credential_delete


class CredentialInputSerializer(serializers.Serializer):
    name = serializers.RegexField(
        NAME_PATTERN, max_length=100, help_text="letters, digits, '_', '.', '-'"
    )
    value = serializers.CharField(
        max_length=MAX_VALUE_CHARS, write_only=True, trim_whitespace=False
    )


class CredentialSerializer(serializers.Serializer):
    name = serializers.CharField()
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)


def _record(credential: Credential) -> dict:
    return {
        "name": credential.name,
        "created_at": credential.created_at,
        "last_used_at": credential.last_used_at,
    }


class CredentialListApi(APIView):
    @extend_schema(
        responses={200: paginated(CredentialSerializer)}, operation_id="credentials_list"
    )
    def get(self, request):
        paginator = Pagination()
        page = paginator.paginate_queryset(
            Credential.objects.filter(owner=request.user).order_by("name"), request, view=self
        )
        records = [_record(c) for c in page]
        return paginator.get_paginated_response(rendered(CredentialSerializer, records, many=True))

    @extend_schema(request=CredentialInputSerializer, responses={201: CredentialSerializer})
    def post(self, request):
        body = CredentialInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        credential = credential_create(owner=request.user, **body.validated_data)
        return Response(
            rendered(CredentialSerializer, _record(credential)), status=status.HTTP_201_CREATED
        )


class CredentialDetailApi(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request, name):
        if not re.match(NAME_PATTERN, name):  # no such name can exist (and NUL cannot be sent)
            raise Http404("credential not found")
        credential = Credential.objects.filter(owner=request.user, name=name).first()
        if credential is None:
            raise Http404("credential not found")
        credential_delete(credential=credential)
        return Response(status=status.HTTP_204_NO_CONTENT)
