"""`/api/graphs/{id}/triggers/`, `/api/triggers/{id}/` and its deliveries (token API), and
`/hooks/{id}/`, where senders deliver (no token: the trigger's secret)."""

from django.http import JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import rendered
from common.pagination import Pagination, paginated
from graphs.selectors import graph_get

from .models import Delivery, Trigger
from .selectors import (
    deliveries_of,
    delivery_record,
    trigger_get,
    trigger_record,
    triggers_of_graph,
)
from .services import delivery_receive, trigger_create, trigger_delete, trigger_update


class TriggerWriteSerializer(serializers.Serializer):
    graph_version = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, help_text="null: the latest"
    )
    preset_id = serializers.UUIDField(required=False, allow_null=True)
    enabled = serializers.BooleanField(required=False)
    auth = serializers.ChoiceField(choices=Trigger.Auth.choices, required=False)
    filters = serializers.DictField(
        required=False, help_text='payload fields a delivery must have: {"action": "opened"}'
    )
    event_key = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=200,
        help_text="a payload path: deliveries wake this graph's wait_for_event nodes waiting on "
        "the key found there, instead of starting runs",
    )


class TriggerSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    graph_id = serializers.UUIDField()
    graph_version = serializers.IntegerField(allow_null=True)
    preset_id = serializers.UUIDField(allow_null=True)
    enabled = serializers.BooleanField()
    auth = serializers.ChoiceField(choices=Trigger.Auth.choices)
    url = serializers.URLField(help_text="where senders POST deliveries")
    filters = serializers.DictField()
    event_key = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class CreatedTriggerSerializer(TriggerSerializer):
    secret = serializers.CharField(help_text="the signing secret: shown on creation only")


class DeliverySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    delivery_id = serializers.CharField()
    status = serializers.ChoiceField(choices=Delivery.Status.choices)
    reason = serializers.CharField()
    execution_id = serializers.UUIDField(allow_null=True)
    woken = serializers.IntegerField(
        allow_null=True, help_text="an event trigger's delivery: the waiting nodes it woke"
    )
    created_at = serializers.DateTimeField()


def _url(request, trigger: Trigger) -> str:
    return request.build_absolute_uri(reverse("hook", args=[trigger.pk]))


def _shown(request, trigger: Trigger) -> dict:
    return rendered(TriggerSerializer, trigger_record(trigger, _url(request, trigger)))


class TriggerListApi(APIView):
    @extend_schema(responses={200: paginated(TriggerSerializer)}, operation_id="triggers_list")
    def get(self, request, graph_id):
        graph = graph_get(user=request.user, graph_id=graph_id)
        paginator = Pagination()
        page = paginator.paginate_queryset(triggers_of_graph(graph), request, view=self)
        records = [trigger_record(t, _url(request, t)) for t in page]
        return paginator.get_paginated_response(rendered(TriggerSerializer, records, many=True))

    @extend_schema(request=TriggerWriteSerializer, responses={201: CreatedTriggerSerializer})
    def post(self, request, graph_id):
        graph = graph_get(user=request.user, graph_id=graph_id)
        body = TriggerWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        trigger, secret = trigger_create(
            owner=request.user, graph=graph, values=dict(body.validated_data)
        )
        record = {**trigger_record(trigger, _url(request, trigger)), "secret": secret}
        return Response(rendered(CreatedTriggerSerializer, record), status=status.HTTP_201_CREATED)


class TriggerDetailApi(APIView):
    @extend_schema(responses={200: TriggerSerializer})
    def get(self, request, trigger_id):
        trigger = trigger_get(user=request.user, trigger_id=trigger_id)
        return Response(
            rendered(TriggerSerializer, trigger_record(trigger, _url(request, trigger)))
        )

    @extend_schema(request=TriggerWriteSerializer, responses={200: TriggerSerializer})
    def patch(self, request, trigger_id):
        trigger = trigger_get(user=request.user, trigger_id=trigger_id)
        body = TriggerWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        trigger = trigger_update(trigger=trigger, values=dict(body.validated_data))
        return Response(
            rendered(TriggerSerializer, trigger_record(trigger, _url(request, trigger)))
        )

    @extend_schema(responses={204: None})
    def delete(self, request, trigger_id):
        trigger_delete(trigger=trigger_get(user=request.user, trigger_id=trigger_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeliveryListApi(APIView):
    @extend_schema(responses={200: paginated(DeliverySerializer)}, operation_id="deliveries_list")
    def get(self, request, trigger_id):
        trigger = trigger_get(user=request.user, trigger_id=trigger_id)
        paginator = Pagination()
        page = paginator.paginate_queryset(deliveries_of(trigger), request, view=self)
        records = [delivery_record(d) for d in page]
        return paginator.get_paginated_response(rendered(DeliverySerializer, records, many=True))


# What a sender is answered, by what became of its delivery.
HOOK_STATUS = {
    "accepted": 202,
    "duplicate": 202,
    "filtered": 202,
    "event": 202,
    "unknown": 404,
    "disabled": 404,
    "too_large": 413,
    "bad_signature": 401,
    "stale": 401,
    "rate_limited": 429,
    "not_json": 400,
    "no_event_key": 422,
    "no_credits": 402,
    "graph_invalid": 422,
}


@csrf_exempt
@require_POST
def hook(request, trigger_id):
    """A delivery: the body read up to one byte past the cap (so a larger one is known
    without reading it all)."""
    from django.conf import settings

    body = request.read(settings.TRIGGER_MAX_BODY_BYTES + 1)
    received = delivery_receive(
        trigger_id, body=body, headers=request.headers, query=request.GET.dict()
    )
    code = HOOK_STATUS[received.outcome]
    if code == 202:
        answer = {"execution_id": received.execution_id, "outcome": received.outcome}
        if received.woken is not None:
            answer["woken"] = received.woken
    elif code == 404:
        answer = {"detail": "Not found."}  # unknown and disabled look alike to a sender
    else:
        answer = {"detail": received.reason}
    response = JsonResponse(answer, status=code)
    if received.retry_after is not None:
        response["Retry-After"] = str(max(1, round(received.retry_after)))
    return response
