from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import rendered
from common.pagination import Pagination, paginated

from .models import Notification
from .services import mark_read, payload, settings_of, webhook_secret_rotate


class NotificationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=Notification.Kind.choices)
    message = serializers.CharField()
    data = serializers.JSONField()  # type: ignore[assignment]
    created_at = serializers.DateTimeField()
    read_at = serializers.DateTimeField(allow_null=True)


class MarkReadSerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(),
        required=False,
        max_length=1000,
        help_text="Default: all your unread notifications",
    )


class SettingsSerializer(serializers.Serializer):
    email_enabled = serializers.BooleanField()
    webhook_secret = serializers.CharField(
        read_only=True, help_text="Verifies X-Agentgraph-Signature"
    )


class NotificationListApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("unread", bool, description="only unread ones")],
        responses={200: paginated(NotificationSerializer)},
        operation_id="notifications_list",
    )
    def get(self, request):
        notes = Notification.objects.filter(user=request.user).order_by("-created_at", "-id")
        if request.query_params.get("unread") in ("1", "true", "yes"):
            notes = notes.filter(read_at=None)
        paginator = Pagination()
        page = paginator.paginate_queryset(notes, request, view=self)
        records = [payload(n) for n in page]
        return paginator.get_paginated_response(
            rendered(NotificationSerializer, records, many=True)
        )


class MarkReadApi(APIView):
    """Mark notifications read: the given ids, or all."""

    @extend_schema(request=MarkReadSerializer, responses={200: None})
    def post(self, request):
        body = MarkReadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        count = mark_read(user=request.user, ids=body.validated_data.get("ids"))
        return Response({"marked_read": count})


def _settings_response(prefs) -> Response:
    body = {"email_enabled": prefs.email_enabled, "webhook_secret": prefs.webhook_secret}
    return Response(rendered(SettingsSerializer, body))


class SettingsApi(APIView):
    @extend_schema(responses={200: SettingsSerializer})
    def get(self, request):
        return _settings_response(settings_of(request.user.pk))

    @extend_schema(request=SettingsSerializer, responses={200: SettingsSerializer})
    def patch(self, request):
        body = SettingsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        prefs = settings_of(request.user.pk)
        prefs.email_enabled = body.validated_data["email_enabled"]
        prefs.save(update_fields=["email_enabled"])
        return _settings_response(prefs)


class RotateSecretApi(APIView):
    """A new webhook secret; deliveries from now on are signed with it."""

    @extend_schema(request=None, responses={200: SettingsSerializer})
    def post(self, request):
        return _settings_response(webhook_secret_rotate(request.user.pk))
