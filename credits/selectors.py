from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.utils import timezone

from .models import CreditTransaction, TokenHold


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


@dataclass(frozen=True)
class OpenHold:
    call: str
    node_execution_id: int
    attempt: int
    age_seconds: float


def open_token_holds(older_than_seconds: float, limit: int = 500) -> list[OpenHold]:
    """Token holds not settled yet, taken more than `older_than_seconds` ago, oldest first."""
    now = timezone.now()
    rows = (
        TokenHold.objects.filter(
            settled_at=None, created_at__lt=now - timedelta(seconds=older_than_seconds)
        )
        .order_by("created_at")
        .values_list("call", "node_execution_id", "attempt", "created_at")[:limit]
    )
    return [
        OpenHold(call, node_execution_id, attempt, (now - created_at).total_seconds())
        for call, node_execution_id, attempt, created_at in rows
    ]


_SPENT_SQL = """
SELECT COALESCE(-SUM(t.amount), 0)
  FROM credits_credittransaction AS t
 WHERE t.type IN ('USAGE', 'REFUND') AND t.execution_id = ANY(%s)
"""


def spent_by(execution_ids: list) -> int:
    """Credits the runs spent, net of what came back (token holds' unused parts)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(_SPENT_SQL, [list(execution_ids)])
        return int(cursor.fetchone()[0])
