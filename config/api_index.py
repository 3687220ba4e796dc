"""`GET /api/`: where things are: the docs, the schema, and every endpoint's path."""

from django.urls import URLPattern
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView


def api_index(patterns: list[URLPattern]):
    paths = sorted({f"/api/{pattern.pattern}" for pattern in patterns})

    class ApiIndex(APIView):
        """The API's map, for people and clients that start at /api/."""

        permission_classes = [AllowAny]
        throttle_classes: list = []
        schema = None  # not an endpoint of the API itself

        def get(self, request):
            return Response({
                "docs": "/api/docs/", "redoc": "/api/redoc/", "schema": "/api/schema/",
                "console": "/console/runs/",
                "authentication": 'POST /api/auth/token/ {"username", "password"}, then '
                "send Authorization: Token KEY (or use the console's session)",
                "endpoints": paths,
            })  # fmt: skip

    return ApiIndex.as_view()
