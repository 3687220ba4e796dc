"""`Idempotency-Key` on writes, with Stripe's contract: the same key and the same request
from the same user within IDEMPOTENCY_TTL_HOURS answers the first response again and does
nothing; the same key with another request answers 422.

The record is inserted in the transaction that does the work, before it: a second request
with the key waits on the unique index until the first commits, then finds its response (so
two concurrent requests create one run). Only successful responses are kept: after an error
the key is free again, so a corrected request can use it."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import timedelta
from functools import wraps

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from common.api import error_response

from .models import IdempotentRequest

HEADER = "Idempotency-Key"
KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces


def fingerprint(method: str, path: str, body) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def idempotent(view: Callable) -> Callable:
    """For an APIView's post(): replays the first response to a repeated key."""

    @wraps(view)
    def handle(self, request, *args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return view(self, request, *args, **kwargs)
        if not KEY_RE.match(key):
            return error_response(f"{HEADER} must be 1 to 255 printable ASCII characters", 400)
        request_print = fingerprint(request.method, request.path, request.data)
        with transaction.atomic():
            record = _claim(request.user, key, request_print)
            if record.status_code is not None or record.fingerprint != request_print:
                return _replay(record, request_print)
            response = view(self, request, *args, **kwargs)
            if 200 <= response.status_code < 300:
                record.status_code = response.status_code
                # As the client saw it (DRF's encoder renders dates and ids).
                record.response = json.loads(json.dumps(response.data, cls=JSONEncoder))
                record.save(update_fields=["status_code", "response"])
            else:
                record.delete()
            return response

    return handle


def _claim(user, key: str, request_print: str) -> IdempotentRequest:
    """This user's record of `key`: a new one (ours to fill), or the first request's (after
    it committed). An expired one is replaced."""
    expired = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_TTL_HOURS)
    IdempotentRequest.objects.filter(user=user, key=key, created_at__lt=expired).delete()
    try:
        with transaction.atomic():
            return IdempotentRequest.objects.create(user=user, key=key, fingerprint=request_print)
    except IntegrityError:  # the first request committed meanwhile
        return IdempotentRequest.objects.get(user=user, key=key)


def _replay(record: IdempotentRequest, request_print: str) -> Response:
    if record.fingerprint != request_print:
        return error_response(
            f"this {HEADER} was used with another request; use a new key for a new request",
            422,
        )
    response = Response(record.response, status=record.status_code)
    response["Idempotent-Replayed"] = "true"
    return response


def purge_expired() -> int:
    expired = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_TTL_HOURS)
    deleted, _ = IdempotentRequest.objects.filter(created_at__lt=expired).delete()
    return deleted


# For the OpenAPI schema of the views that take the header.
SCHEMA_PARAMETER = OpenApiParameter(
    HEADER,
    str,
    location=OpenApiParameter.HEADER,
    required=False,
    description="Makes the write safe to retry: the same key and request within "
    "IDEMPOTENCY_TTL_HOURS answer the first response again; another request with the key: 422",
)
