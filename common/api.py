"""API plumbing shared by every app: JSON parsing with a size cap, one error format."""

import json
from typing import Any

from django.conf import settings
from django.http import Http404
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from .json_values import storable_problem


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "payload_too_large"


class LimitedJSONParser(JSONParser):
    """JSON parser that never reads more than API_MAX_BODY_BYTES (chunked bodies included)
    and accepts only standard JSON (no NaN or Infinity, which PostgreSQL's jsonb rejects)."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.API_MAX_BODY_BYTES
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(f"Request body too large; the limit is {limit} bytes.")
        if not raw:
            return {}
        try:
            data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise exceptions.ParseError(f"Malformed JSON: {exc}") from exc
        except RecursionError as exc:
            raise exceptions.ParseError("Malformed JSON: nested too deeply") from exc
        problem = storable_problem(data)
        if problem:
            raise exceptions.ParseError(f"Unsupported JSON: {problem}")
        return data


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def exception_handler(exc, context):
    """DRF's handler, plus: 404s keep a plain message, validation errors keep their
    structure under `errors` with a readable `detail` on top."""
    # Here, not at the top: DRF's views module reads DEFAULT_PARSER_CLASSES, which names
    # this module's parser, as it loads.
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(exc, exceptions.ValidationError) and not (
        isinstance(data, dict) and "detail" in data
    ):
        response.data = {"detail": "Invalid input.", "errors": data}
    return response


def error_response(detail, code, errors=None):
    body = {"detail": detail}
    if errors is not None:
        body["errors"] = errors
    return Response(body, status=code)


def rendered(serializer: type[serializers.Serializer], data: Any, *, many: bool = False) -> Any:
    """A response body as its serializer describes it: the shape the schema shows is the
    shape sent (a key the serializer does not declare is not sent)."""
    return serializer(data, many=many).data
