"""API plumbing shared by every app: JSON parsing with a size cap, one error format."""

import functools
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
    """DRF's handler, plus: 404s keep a plain message, and every 400 (a field's error,
    malformed JSON) answers a readable `detail` and `errors`, a list of
    {"message", "field"?} (graph problems add node_id, pin, link_index, input)."""
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
        errors = flattened_errors(data)
        first = errors[0] if errors else {"message": "Invalid input."}
        where = f"{first['field']}: " if first.get("field") else ""
        response.data = {"detail": f"{where}{first['message']}", "errors": errors}
    elif isinstance(exc, exceptions.ParseError):
        response.data = {"detail": str(exc.detail), "errors": [{"message": str(exc.detail)}]}
    return response


def flattened_errors(data: Any, field: str = "") -> list[dict[str, str]]:
    """DRF's nested error structure as a flat list: {"message", "field"} with the field's
    dotted path (`inputs.count`, `from_nodes.0`)."""
    if isinstance(data, dict):
        return [
            error
            for key, value in data.items()
            for error in flattened_errors(value, f"{field}.{key}" if field else str(key))
        ]
    if isinstance(data, list):
        if all(not isinstance(item, dict | list) for item in data):
            return [_error(str(item), field) for item in data]
        return [
            error
            for index, item in enumerate(data)
            for error in flattened_errors(item, f"{field}.{index}" if field else str(index))
        ]
    return [_error(str(data), field)]


def _error(message: str, field: str) -> dict[str, str]:
    return {"message": message, "field": field} if field and field != "non_field_errors" else {
        "message": message
    }  # fmt: skip


# Budgets are stored as PostgreSQL integers.
MAX_BUDGET = 2**31 - 1


def budget_field(help_text: str) -> serializers.IntegerField:
    """The optional `budget` (credits) of a run, a preset or a schedule."""
    return serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=MAX_BUDGET, help_text=help_text
    )


def error_response(detail, code, errors=None):
    body = {"detail": detail}
    if errors is not None:
        body["errors"] = errors
    return Response(body, status=code)


def rendered(serializer: type[serializers.Serializer], data: Any, *, many: bool = False) -> Any:
    """A response body as its serializer describes it: the shape the schema shows is the
    shape sent (a key the serializer does not declare is not sent). Values are left to the
    JSON renderer, which writes dates, ids and numbers as the serializer's fields would; so
    a shape costs a dictionary per object, not a field call per value."""
    if many:
        return [_shaped(serializer, item) for item in data]
    return _shaped(serializer, data)


def _shaped(serializer: type[serializers.Serializer], data: dict[str, Any]) -> dict[str, Any]:
    shaped = {}
    for name, nested in _shape_of(serializer):
        if name not in data:
            continue  # a field the record leaves out (e.g. node_executions of a list entry)
        value = data[name]
        if nested is not None and value is not None:
            if isinstance(value, list):
                value = [_shaped(nested, item) for item in value]
            else:
                value = _shaped(nested, value)
        shaped[name] = value
    return shaped


@functools.cache
def _shape_of(serializer: type[serializers.Serializer]) -> tuple[tuple[str, Any], ...]:
    """(field name, nested serializer class or None) of each field the serializer sends."""
    shape = []
    for name, field in serializer().fields.items():
        if field.write_only:
            continue
        inner = field.child if isinstance(field, serializers.ListSerializer) else field
        shape.append((name, type(inner) if isinstance(inner, serializers.Serializer) else None))
    return tuple(shape)
