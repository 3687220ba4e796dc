"""The one place domain errors become HTTP answers (DRF's EXCEPTION_HANDLER), and the
answers to requests no view handled. Views call services and let their errors rise."""

from collections.abc import Callable

from django.http import JsonResponse
from rest_framework import status
from rest_framework.response import Response

from common.api import error_response
from common.api import exception_handler as common_exception_handler
from credentials.services import CredentialExists
from credits.services import CreditError, InsufficientCredits, Overdraw, ReferenceInUse
from executions.control import ConflictingState
from executions.reviews import DecisionInvalid, ReviewDecided
from files.services import FileNotFound, FileRefused
from graphs.services import PresetExists, PresetInUse
from graphs.validation import GraphInvalid
from schedules.services import ScheduleInvalid


def _graph_invalid(exc: GraphInvalid) -> Response:
    first = exc.problems[0]
    where = ", ".join(
        f"{k} {first[k]}" for k in ("node_id", "pin", "link_index", "field", "input") if k in first
    )
    detail = f"{first['message']} ({where})" if where else first["message"]
    if len(exc.problems) > 1:
        detail += f"; and {len(exc.problems) - 1} more problem(s)"
    return error_response(detail, status.HTTP_400_BAD_REQUEST, errors=exc.problems)


def _schedule_invalid(exc: ScheduleInvalid) -> Response:
    return error_response(
        f"{exc.field}: {exc.message}",
        status.HTTP_400_BAD_REQUEST,
        errors=[{"field": exc.field, "message": exc.message}],
    )


def _insufficient(exc: InsufficientCredits) -> Response:
    body = {"detail": str(exc), "balance": exc.balance, "cost": exc.cost}
    return Response(body, status=status.HTTP_402_PAYMENT_REQUIRED)


def _overdraw(exc: Overdraw) -> Response:
    return Response({"detail": str(exc), "balance": exc.balance}, status=status.HTTP_409_CONFLICT)


def _plain(code: int) -> Callable[[Exception], Response]:
    return lambda exc: Response({"detail": str(exc)}, status=code)


DOMAIN_ERRORS: dict[type[Exception], Callable] = {
    GraphInvalid: _graph_invalid,
    ScheduleInvalid: _schedule_invalid,
    InsufficientCredits: _insufficient,
    Overdraw: _overdraw,
    CreditError: _plain(status.HTTP_400_BAD_REQUEST),
    ReferenceInUse: _plain(status.HTTP_409_CONFLICT),
    CredentialExists: _plain(status.HTTP_409_CONFLICT),
    PresetExists: _plain(status.HTTP_409_CONFLICT),
    PresetInUse: _plain(status.HTTP_409_CONFLICT),
    ConflictingState: _plain(status.HTTP_409_CONFLICT),
    ReviewDecided: _plain(status.HTTP_409_CONFLICT),
    DecisionInvalid: _plain(status.HTTP_400_BAD_REQUEST),
    FileRefused: _plain(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE),
    FileNotFound: _plain(status.HTTP_404_NOT_FOUND),
}


def api_exception_handler(exc, context):
    for kind in type(exc).__mro__:
        if kind in DOMAIN_ERRORS:
            return DOMAIN_ERRORS[kind](exc)
    return common_exception_handler(exc, context)


def not_found(request, exception=None):
    return JsonResponse({"detail": "Not found."}, status=404)


def server_error(request):
    return JsonResponse({"detail": "Internal server error."}, status=500)
