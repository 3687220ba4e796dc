from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination


class Pagination(LimitOffsetPagination):
    """`?limit=&offset=` pages of {count, next, previous, results}; limit capped at 200."""

    default_limit = 50
    max_limit = 200


def paginated(item: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """The {count, next, previous, results} page of `item`, for the schema."""
    return type(
        f"Paginated{item.__name__.removesuffix('Serializer')}List",
        (serializers.Serializer,),
        {
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": item(many=True),
        },
    )
