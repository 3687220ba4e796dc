from django.conf import settings
from django.http import JsonResponse


class RequestSizeLimitMiddleware:
    """Answer 413 to a body declared larger than API_MAX_BODY_BYTES, before anything reads it.

    Bodies sent without a Content-Length are capped while parsing (config.api.LimitedJSONParser).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        declared = request.META.get("CONTENT_LENGTH") or "0"
        try:
            size = int(declared)
        except ValueError:
            return JsonResponse({"detail": "Content-Length is not a number."}, status=400)
        if size > settings.API_MAX_BODY_BYTES:
            return JsonResponse(
                {
                    "detail": f"Request body too large: {size} bytes, the limit is "
                    f"{settings.API_MAX_BODY_BYTES}."
                },
                status=413,
            )
        return self.get_response(request)
