from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from blocks.serializers import BlockSerializer

from .selectors import block_catalogue


class BlockListApi(APIView):
    """The block catalogue: pins as JSON schemas, static output, cost per run."""

    @extend_schema(responses={200: BlockSerializer(many=True)})
    def get(self, request):
        return Response(block_catalogue())
