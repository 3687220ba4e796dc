import django_filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import rendered
from common.pagination import Pagination, paginated

from .catalogue import block_catalogue
from .models import CreditTransaction
from .selectors import transaction_record, transactions_of
from .services import (
    MAX_AMOUNT,
    STAFF_TYPES,
    balance_of,
    credits_grant,
)


class BalanceSerializer(serializers.Serializer):
    balance = serializers.IntegerField()


class TransactionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    amount = serializers.IntegerField()
    type = serializers.ChoiceField(choices=CreditTransaction.Type.choices)
    balance_after = serializers.IntegerField()
    reference = serializers.CharField()
    metadata = serializers.JSONField()
    created_at = serializers.DateTimeField()


class GrantSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    amount = serializers.IntegerField(min_value=-MAX_AMOUNT, max_value=MAX_AMOUNT)
    type = serializers.ChoiceField(choices=STAFF_TYPES, default=CreditTransaction.Type.GRANT)
    note = serializers.CharField(max_length=1000, required=False, default="", allow_blank=True)
    reference = serializers.CharField(
        max_length=150, required=False, help_text="Idempotency key: a repeat applies nothing."
    )


class TransactionFilter(django_filters.FilterSet):
    type = django_filters.ChoiceFilter(choices=CreditTransaction.Type.choices)
    execution = django_filters.UUIDFilter(field_name="execution_id")

    class Meta:
        model = CreditTransaction
        fields = ["type", "execution"]


class BalanceApi(APIView):
    @extend_schema(responses={200: BalanceSerializer})
    def get(self, request):
        return Response(rendered(BalanceSerializer, {"balance": balance_of(request.user.pk)}))


class TransactionListApi(APIView):
    """Your ledger, newest first."""

    @extend_schema(
        parameters=[
            OpenApiParameter("type", str, enum=[t for t, _ in CreditTransaction.Type.choices]),
            OpenApiParameter("execution", OpenApiTypes.UUID, description="rows of one run"),
        ],
        responses={200: paginated(TransactionSerializer)},
        operation_id="credits_transactions_list",
    )
    def get(self, request):
        filtered = TransactionFilter(request.query_params, queryset=transactions_of(request.user))
        if not filtered.is_valid():
            raise ValidationError(filtered.errors)
        paginator = Pagination()
        page = paginator.paginate_queryset(filtered.qs, request, view=self)
        records = [transaction_record(t) for t in page]
        return paginator.get_paginated_response(rendered(TransactionSerializer, records, many=True))


class GrantApi(APIView):
    """Staff only: add credits to a user, or remove them with a negative ADJUSTMENT."""

    permission_classes = [IsAdminUser]

    @extend_schema(request=GrantSerializer, responses={201: TransactionSerializer})
    def post(self, request):
        body = GrantSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        applied = credits_grant(by=request.user, **body.validated_data)
        return Response(
            rendered(TransactionSerializer, transaction_record(applied.transaction)),
            status=status.HTTP_201_CREATED if applied.created else status.HTTP_200_OK,
        )


class BlockSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    category = serializers.CharField()
    input_schema = serializers.JSONField()
    output_schema = serializers.JSONField()
    static_output = serializers.BooleanField()
    cost = serializers.IntegerField(help_text="Credits per run, charged before it runs.")
    cost_per_second = serializers.FloatField(help_text="Credits per second, settled after.")
    cost_per_mib = serializers.FloatField(help_text="Credits per MiB of output, settled after.")


class BlockListApi(APIView):
    """The block catalogue: pins as JSON schemas, static output, cost per run."""

    @extend_schema(responses={200: BlockSerializer(many=True)})
    def get(self, request):
        return Response(rendered(BlockSerializer, block_catalogue(), many=True))
