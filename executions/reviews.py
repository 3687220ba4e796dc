"""People's decisions on parked nodes: the review inbox, approve and reject, and events
(POST /api/events/) for `wait_for_event`. A review is a Wait of kind `review` (a
human_review node) or `approval` (safe mode); its decision goes through waits.wait_decide,
once."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.http import Http404

from common.json_values import UnstorableValue, make_storable

from .models import Wait
from .waits import REVIEW_KINDS, events_deliver, wait_decide

UNSET: Any = object()


class ReviewDecided(Exception):
    """The review was decided already (by a person, its deadline, or its run's end)."""


class DecisionInvalid(Exception):
    """What came with a decision cannot be taken (edited data of a review that is not
    editable, a value too large)."""


def reviews_of(user, *, status: str | None = None) -> QuerySet[Wait]:
    """The user's reviews across all their runs, newest first."""
    reviews = Wait.objects.filter(user=user, kind__in=REVIEW_KINDS).select_related("execution")
    return reviews.filter(status=status) if status else reviews


def review_record(review: Wait) -> dict[str, Any]:
    """A review as the API shows it (serializers.ReviewSerializer)."""
    payload = review.payload if isinstance(review.payload, dict) else {}
    return {
        "id": review.pk,
        "kind": review.kind,
        "execution_id": review.execution_id,
        "graph_id": review.execution.graph_id,
        "node_id": review.node_id,
        "node_execution_id": review.node_execution_id,
        "data": review.data,
        "message": review.message,
        "editable": review.editable,
        "status": review.status,
        "created_at": review.created_at,
        "deadline": review.deadline,
        "decided_at": review.decided_at,
        "decision_message": review.response,
        "edited_data": payload.get("data"),
    }


def review_get(*, user, review_id) -> Wait:
    """The review, if the user may see and decide it (its run's owner, or staff); else 404."""
    reviews = Wait.objects.filter(pk=review_id, kind__in=REVIEW_KINDS).select_related("execution")
    if not user.is_staff:
        reviews = reviews.filter(user=user)
    review = reviews.first()
    if review is None:
        raise Http404("review not found")
    return review


def review_decide(
    *, review: Wait, user, approve: bool, data: Any = UNSET, message: str = ""
) -> Wait:
    """Approve (with edited `data`, when the review is editable) or reject, once: a review
    decided already raises ReviewDecided, and of two racing decisions one wins."""
    payload = None
    if data is not UNSET:
        if not approve:
            raise DecisionInvalid("data comes only with an approval")
        if not review.editable:
            raise DecisionInvalid("this review is not editable: approve it without data")
        payload = {"data": _storable(data, "data")}
    decided = wait_decide(
        review.pk,
        Wait.State.APPROVED if approve else Wait.State.REJECTED,
        payload=payload,
        response=message,
        decided_by=user.pk,
        expected_kinds=REVIEW_KINDS,
    )
    if decided is None:
        status = Wait.objects.values_list("status", flat=True).get(pk=review.pk)
        raise ReviewDecided(f"this review was decided already: {status}")
    return Wait.objects.select_related("execution").get(pk=decided.pk)


def event_post(*, user, key: str, payload: Any) -> int:
    """Wakes the user's nodes waiting for `key` (wait_for_event); how many woke."""
    return event_deliver(user_id=user.pk, key=key, payload=payload)


def event_deliver(*, user_id: int, key: str, payload: Any, graph_id=None) -> int:
    """An event from the API or an event trigger (only `graph_id`'s runs, then)."""
    return events_deliver(user_id, key, _storable(payload, "payload"), graph_id=graph_id)


def _storable(value: Any, name: str) -> Any:
    size = len(json.dumps(value, separators=(",", ":")))
    if size > settings.ENGINE_MAX_INPUT_BYTES:
        raise DecisionInvalid(
            f"{name} is {size} bytes of JSON; the limit is {settings.ENGINE_MAX_INPUT_BYTES}"
        )
    try:
        return make_storable(value)
    except UnstorableValue as exc:
        raise DecisionInvalid(f"{name}: {exc}") from exc
