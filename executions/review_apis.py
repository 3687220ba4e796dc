"""The review inbox and events: thin views over reviews.py."""

from django_filters import ChoiceFilter, FilterSet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import rendered
from common.pagination import Pagination, paginated

from .models import Wait
from .reviews import UNSET, event_post, review_decide, review_get, review_record, reviews_of
from .serializers import (
    ApproveSerializer,
    EventSerializer,
    EventWokenSerializer,
    RejectSerializer,
    ReviewSerializer,
)

REVIEW_STATES = [
    (s, s)
    for s in (
        Wait.State.PENDING,
        Wait.State.APPROVED,
        Wait.State.REJECTED,
        Wait.State.TIMED_OUT,
    )
]


class ReviewFilter(FilterSet):
    status = ChoiceFilter(choices=REVIEW_STATES)

    class Meta:
        model = Wait
        fields = ["status"]


class ReviewListApi(APIView):
    """The user's reviews across all their runs, newest first (`?status=pending`: the inbox)."""

    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=[s for s, _ in REVIEW_STATES])],
        responses={200: paginated(ReviewSerializer)},
        operation_id="reviews_list",
    )
    def get(self, request):
        filtered = ReviewFilter(request.query_params, queryset=reviews_of(request.user))
        if not filtered.is_valid():
            raise ValidationError(filtered.errors)
        paginator = Pagination()
        page = paginator.paginate_queryset(filtered.qs, request, view=self)
        return paginator.get_paginated_response(
            rendered(ReviewSerializer, [review_record(r) for r in page], many=True)
        )


class ReviewDetailApi(APIView):
    @extend_schema(responses={200: ReviewSerializer})
    def get(self, request, review_id):
        review = review_get(user=request.user, review_id=review_id)
        return Response(rendered(ReviewSerializer, review_record(review)))


class ReviewApproveApi(APIView):
    """Approves, with edited `data` when the review is editable; 409 once decided."""

    @extend_schema(request=ApproveSerializer, responses={200: ReviewSerializer})
    def post(self, request, review_id):
        review = review_get(user=request.user, review_id=review_id)
        body = ApproveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        decided = review_decide(
            review=review,
            user=request.user,
            approve=True,
            data=body.validated_data.get("data", UNSET),
            message=body.validated_data.get("message", ""),
        )
        return Response(rendered(ReviewSerializer, review_record(decided)))


class ReviewRejectApi(APIView):
    """Rejects; 409 once decided."""

    @extend_schema(request=RejectSerializer, responses={200: ReviewSerializer})
    def post(self, request, review_id):
        review = review_get(user=request.user, review_id=review_id)
        body = RejectSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        decided = review_decide(
            review=review,
            user=request.user,
            approve=False,
            message=body.validated_data.get("message", ""),
        )
        return Response(rendered(ReviewSerializer, review_record(decided)))


class EventApi(APIView):
    """Delivers an event to the caller's runs waiting on its key (wait_for_event)."""

    @extend_schema(request=EventSerializer, responses={200: EventWokenSerializer})
    def post(self, request):
        body = EventSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        woken = event_post(
            user=request.user,
            key=body.validated_data["key"],
            payload=body.validated_data["payload"],
        )
        return Response(rendered(EventWokenSerializer, {"woken": woken}), status=status.HTTP_200_OK)
