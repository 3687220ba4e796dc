"""`/api/schedules/`: list, create, read, change (PATCH), delete, and each one's occurrences."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import budget_field, rendered
from common.pagination import Pagination, paginated
from idempotency.services import SCHEMA_PARAMETER as IDEMPOTENCY_KEY
from idempotency.services import idempotent

from .models import Occurrence, Overlap
from .selectors import (
    occurrence_record,
    occurrences_of,
    schedule_get,
    schedule_record,
    schedules_of,
)
from .services import schedule_create, schedule_delete, schedule_update


class ScheduleInputSerializer(serializers.Serializer):
    graph_id = serializers.UUIDField()
    graph_version = serializers.IntegerField(
        min_value=1, allow_null=True, required=False, help_text="null: the latest at fire time"
    )
    cron = serializers.CharField(
        max_length=200, help_text="5 fields: minute hour day-of-month month day-of-week"
    )
    timezone = serializers.CharField(
        max_length=64, required=False, help_text="IANA name, default UTC"
    )
    inputs = serializers.DictField(
        required=False, help_text="on top of the preset's inputs, when it names one"
    )
    preset_id = serializers.UUIDField(
        required=False,
        allow_null=True,
        help_text="a preset of the graph: its inputs as they are at fire time, and its "
        "version unless graph_version is given",
    )
    budget = budget_field(
        "credits each run (with its sub-graph runs) may spend; a paid node that "
        "would pass it waits for your review. Null: the preset's, else none"
    )
    enabled = serializers.BooleanField(required=False)
    overlap = serializers.ChoiceField(choices=Overlap.choices, required=False)


class ScheduleSerializer(ScheduleInputSerializer):
    id = serializers.UUIDField(read_only=True)
    next_runs = serializers.ListField(
        child=serializers.DateTimeField(),
        read_only=True,
        help_text="the next 5 fire times, in the schedule's time zone",
    )
    last_run_at = serializers.DateTimeField(allow_null=True, read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)


class OccurrenceSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    fire_time = serializers.DateTimeField()
    outcome = serializers.ChoiceField(choices=Occurrence.Outcome.choices)
    reason = serializers.ChoiceField(choices=Occurrence.Reason.choices, allow_null=True)
    detail = serializers.CharField()
    execution_id = serializers.UUIDField(allow_null=True)
    created_at = serializers.DateTimeField()


class ScheduleListApi(APIView):
    @extend_schema(responses={200: paginated(ScheduleSerializer)}, operation_id="schedules_list")
    def get(self, request):
        paginator = Pagination()
        page = paginator.paginate_queryset(schedules_of(request.user), request, view=self)
        records = [schedule_record(s) for s in page]
        return paginator.get_paginated_response(rendered(ScheduleSerializer, records, many=True))

    @extend_schema(
        request=ScheduleInputSerializer,
        responses={201: ScheduleSerializer},
        parameters=[IDEMPOTENCY_KEY],
    )
    @idempotent
    def post(self, request):
        body = ScheduleInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        schedule = schedule_create(owner=request.user, values=body.validated_data)
        return Response(
            rendered(ScheduleSerializer, schedule_record(schedule)), status=status.HTTP_201_CREATED
        )


class ScheduleDetailApi(APIView):
    @extend_schema(responses={200: ScheduleSerializer})
    def get(self, request, schedule_id):
        schedule = schedule_get(user=request.user, schedule_id=schedule_id)
        return Response(rendered(ScheduleSerializer, schedule_record(schedule)))

    @extend_schema(
        request=ScheduleInputSerializer(partial=True), responses={200: ScheduleSerializer}
    )
    def patch(self, request, schedule_id):
        schedule = schedule_get(user=request.user, schedule_id=schedule_id)
        body = ScheduleInputSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        schedule = schedule_update(schedule=schedule, changes=body.validated_data)
        return Response(rendered(ScheduleSerializer, schedule_record(schedule)))

    @extend_schema(responses={204: None})
    def delete(self, request, schedule_id):
        schedule_delete(schedule=schedule_get(user=request.user, schedule_id=schedule_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class OccurrenceListApi(APIView):
    @extend_schema(responses={200: paginated(OccurrenceSerializer)})
    def get(self, request, schedule_id):
        schedule = schedule_get(user=request.user, schedule_id=schedule_id)
        paginator = Pagination()
        page = paginator.paginate_queryset(occurrences_of(schedule), request, view=self)
        records = [occurrence_record(o) for o in page]
        return paginator.get_paginated_response(rendered(OccurrenceSerializer, records, many=True))
