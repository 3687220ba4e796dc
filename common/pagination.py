from rest_framework.pagination import LimitOffsetPagination


class Pagination(LimitOffsetPagination):
    """`?limit=&offset=` pages of {count, next, previous, results}; limit capped at 200."""

    default_limit = 50
    max_limit = 200
