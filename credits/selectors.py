from typing import Any

from .models import CreditTransaction


def transactions_of(user):
    return CreditTransaction.objects.filter(user=user).order_by("-id")


def transaction_record(row: CreditTransaction) -> dict[str, Any]:
    return {
        "id": row.pk,
        "amount": row.amount,
        "type": row.type,
        "balance_after": row.balance_after,
        "reference": row.reference,
        "metadata": row.metadata,
        "created_at": row.created_at,
    }
