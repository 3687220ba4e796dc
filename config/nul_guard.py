"""Requests whose path or query string holds a NUL character are refused with 400 before
any view sees them: PostgreSQL cannot store or compare text with NUL in it (psycopg raises
instead of finding nothing), so no such value can name anything we have, and one that
reaches a query (an admin filter, a primary key in a URL) would be a 500."""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import JsonResponse

MESSAGE = "the request's path or query string contains a NUL character"


class RefuseNulCharacters:
    sync_capable = True
    async_capable = True  # no thread hop of its own under ASGI

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        refused = _refusal(request)
        if iscoroutinefunction(self):
            return self._async(request, refused)
        return refused or self.get_response(request)

    async def _async(self, request, refused):
        return refused or await self.get_response(request)


def _refusal(request) -> JsonResponse | None:
    if "\x00" in request.path or _in_query(request):
        return JsonResponse({"detail": MESSAGE}, status=400)
    return None


def _in_query(request) -> bool:
    query = request.META.get("QUERY_STRING", "")
    if "%00" not in query and "\x00" not in query:
        return False  # the quick answer for nearly every request
    return any(
        "\x00" in key or any("\x00" in value for value in values)
        for key, values in request.GET.lists()
    )
