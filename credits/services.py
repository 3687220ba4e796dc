"""Changing balances: every change is one ledger row and one balance update, in one
transaction, once per reference, never below zero.

`ledger_apply` is the only writer of balances. Charging a node uses the node execution as the
reference, so a retried or redelivered task is never charged twice.
"""

from __future__ import annotations

import functools
import json
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.dispatch import Signal

from common import metrics
from notifications.models import Notification
from notifications.services import notify

from .costs import price_of
from .models import CreditBalance, CreditTransaction
from .pricing import usage_amount

Type = CreditTransaction.Type


# Sent in the transaction of each ledger change booked to a node execution (node_execution_id,
# amount: credits spent, negative when given back). The engine keeps node costs from it; the
# ledger knows nothing of node rows.
node_charged = Signal()


class InsufficientCredits(Exception):
    def __init__(self, balance: int, cost: int, what: str = ""):
        self.balance, self.cost = balance, cost
        costs = f"{what} costs {cost}" if what else f"cost {cost}"
        super().__init__(f"insufficient credits: balance {balance}, {costs}")


class CreditError(Exception):
    """A change that cannot be made as asked (bad amount, unknown user)."""


class Overdraw(Exception):
    """A staff change that would take a balance below zero (nothing changed)."""

    def __init__(self, insufficient: InsufficientCredits):
        super().__init__(f"a balance never goes below zero: {insufficient}")
        self.balance = insufficient.balance


class ReferenceInUse(Exception):
    """The reference was applied before, to another user or for another amount: applying it
    again is not a retry of that change."""


@dataclass(frozen=True)
class Applied:
    transaction: CreditTransaction
    created: bool  # False when this reference had been applied before


# One statement: lock the balance, apply the amount (all of it, or with `partial` as much as
# the balance allows), return the balance before and after. No row: insufficient (or no
# account).
_APPLY_SQL = """
WITH old AS (
    SELECT balance FROM credits_creditbalance WHERE user_id = %(user)s FOR UPDATE
)
UPDATE credits_creditbalance AS b
   SET balance = b.balance + CASE WHEN %(partial)s THEN GREATEST(%(amount)s, -old.balance)
                                  ELSE %(amount)s END,
       updated_at = now()
  FROM old
 WHERE b.user_id = %(user)s AND (%(partial)s OR old.balance + %(amount)s >= 0)
RETURNING old.balance, b.balance
"""


def ledger_apply(
    *,
    user_id: int,
    amount: int,
    type: str,
    reference: str,
    metadata: dict[str, Any] | None = None,
    execution_id=None,
    node_execution_id: int | None = None,
    partial: bool = False,
) -> Applied:
    """Change a balance by `amount` and record it. Once per `reference`: applying it again
    returns the first row. Raises InsufficientCredits (nothing changed) when a negative
    amount exceeds the balance, unless `partial`, which takes what the balance has."""
    with transaction.atomic():
        existing = CreditTransaction.objects.filter(reference=reference).first()
        if existing is not None:
            return Applied(_same_change(existing, user_id, type), False)
        try:
            with transaction.atomic():  # a duplicate reference also undoes the balance change
                before, after = _apply(user_id, amount, partial)
                details = dict(metadata or {})
                if after - before != amount:  # a partial charge: say what was asked
                    details["requested"] = amount
                row = CreditTransaction.objects.create(
                    user_id=user_id,
                    amount=after - before,
                    type=type,
                    balance_after=after,
                    reference=reference,
                    metadata=details,
                    execution_id=execution_id,
                    node_execution_id=node_execution_id,
                )
        except IntegrityError:
            # A concurrent transaction applied this reference first.
            existing = CreditTransaction.objects.get(reference=reference)
            return Applied(_same_change(existing, user_id, type), False)
        if type == Type.USAGE and row.amount < 0:
            transaction.on_commit(functools.partial(metrics.CREDITS_CHARGED.inc, -row.amount))
        if node_execution_id is not None and row.amount:
            # The engine keeps each node execution's cost (executions/apps.py listens).
            node_charged.send(
                sender=CreditTransaction, node_execution_id=node_execution_id, amount=-row.amount
            )
        _notify_on_crossing(user_id, before, after)
    return Applied(row, True)


def _same_change(existing: CreditTransaction, user_id: int, type: str) -> CreditTransaction:
    if existing.user_id != user_id or existing.type != type:
        raise ReferenceInUse(f"reference {existing.reference!r} was used for another change")
    return existing


def _apply(user_id: int, amount: int, partial: bool) -> tuple[int, int]:
    params = {"user": user_id, "amount": amount, "partial": partial}
    with connection.cursor() as cursor:
        cursor.execute(_APPLY_SQL, params)
        row = cursor.fetchone()
        if row is None and not CreditBalance.objects.filter(user_id=user_id).exists():
            # An account opened lazily (users from before credits existed): open and retry.
            CreditBalance.objects.bulk_create(
                [CreditBalance(user_id=user_id)], ignore_conflicts=True
            )
            cursor.execute(_APPLY_SQL, params)
            row = cursor.fetchone()
    if row is None:
        raise InsufficientCredits(balance_of(user_id), -amount)
    return row[0], row[1]


def _notify_on_crossing(user_id: int, before: int, after: int) -> None:
    threshold = settings.CREDITS_LOW_BALANCE_THRESHOLD
    if before > threshold >= after > 0:
        notify(
            user_id=user_id,
            kind=Notification.Kind.LOW_BALANCE,
            message=f"Your balance is low: {after} credits left.",
            data={"balance": after, "threshold": threshold},
        )
    if before > 0 and after == 0:
        notify(
            user_id=user_id,
            kind=Notification.Kind.ZERO_BALANCE,
            message="Your balance is zero: runs that need credits will fail until it is topped up.",
            data={"balance": 0},
        )


# --- accounts -------------------------------------------------------------------------------


def account_open(user_id: int) -> None:
    """The user's balance row and starting grant (CREDITS_STARTING_GRANT), once."""
    with transaction.atomic():
        CreditBalance.objects.bulk_create([CreditBalance(user_id=user_id)], ignore_conflicts=True)
        grant = settings.CREDITS_STARTING_GRANT
        if grant > 0:
            ledger_apply(
                user_id=user_id,
                amount=grant,
                type=Type.GRANT,
                reference=f"starting-grant:{user_id}",
                metadata={"note": "starting grant"},
            )


def balance_of(user_id: int) -> int:
    balance = (
        CreditBalance.objects.filter(user_id=user_id).values_list("balance", flat=True).first()
    )
    return balance or 0


# --- charging runs --------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeCharge:
    """Who pays for a node execution, and what it is (for the ledger's metadata)."""

    user_id: int
    graph_id: Any
    execution_id: Any
    node_execution_id: int
    node_id: str
    block: str

    def metadata(self, part: str, **extra: Any) -> dict[str, Any]:
        return {
            "graph_id": str(self.graph_id),
            "execution_id": str(self.execution_id),
            "node_execution_id": self.node_execution_id,
            "node_id": self.node_id,
            "block": self.block,
            "part": part,
            **extra,
        }


def charge_node_run(charge: NodeCharge) -> int:
    """Charge the per-run price before the block runs; the node execution is the key, so a
    redelivered task pays nothing more. Raises InsufficientCredits. Returns the amount."""
    return _charge_per_run(
        charge, charge.block, f"usage:{charge.node_execution_id}", charge.metadata("run")
    )


def charge_tool_run(charge: NodeCharge, *, block: str, call_id: str) -> int:
    """An agent's tool call of `block`: its per-run price, charged to the agent's node once
    per call id. Raises InsufficientCredits. Returns the amount."""
    reference = f"usage:{charge.node_execution_id}:tool:{call_id}"[:200]
    return _charge_per_run(
        charge, block, reference, charge.metadata("tool", tool=block, call=call_id)
    )


def _charge_per_run(charge: NodeCharge, block: str, reference: str, metadata: dict) -> int:
    """`block`'s per-run price, once per `reference`, to the node's payer."""
    price = price_of(block)
    if price.per_run <= 0:
        return 0
    ledger_apply(
        user_id=charge.user_id,
        amount=-price.per_run,
        type=Type.USAGE,
        reference=reference,
        metadata=metadata,
        execution_id=charge.execution_id,
        node_execution_id=charge.node_execution_id,
    )
    return price.per_run


def charge_node_usage(charge: NodeCharge, *, seconds: float, output_data: Any) -> int:
    """Charge the run-time and output-size part after the run, once. The block has already
    run, so this takes what the balance has rather than going below zero."""
    price = price_of(charge.block)
    if not price.has_usage_part:
        return 0
    output_bytes = len(json.dumps(output_data).encode()) if price.per_mib else 0
    amount = usage_amount(price, seconds, output_bytes)
    if amount <= 0:
        return 0
    applied = ledger_apply(
        user_id=charge.user_id,
        amount=-amount,
        type=Type.USAGE,
        reference=f"usage-settle:{charge.node_execution_id}",
        metadata=charge.metadata("usage", seconds=round(seconds, 3), output_bytes=output_bytes),
        execution_id=charge.execution_id,
        node_execution_id=charge.node_execution_id,
        partial=True,
    )
    return -applied.transaction.amount


def ensure_balance_covers(user_id: int, amount: int, what: str) -> None:
    """Raise InsufficientCredits unless the user's balance covers `amount` for `what`."""
    balance = balance_of(user_id)
    if balance < amount:
        raise InsufficientCredits(balance, amount, what)


# --- staff ----------------------------------------------------------------------------------

STAFF_TYPES = (Type.GRANT, Type.TOP_UP, Type.REFUND, Type.ADJUSTMENT)
MAX_AMOUNT = 10**12


def credits_grant(
    *,
    by,
    username: str,
    amount: int,
    type: str = Type.GRANT,
    note: str = "",
    reference: str | None = None,
) -> Applied:
    """Staff add credits to a user (or remove them with a negative ADJUSTMENT), never below
    zero. `reference` makes a retried request apply once."""
    if type not in STAFF_TYPES:
        raise CreditError(f"type must be one of {', '.join(STAFF_TYPES)}")
    if amount == 0 or abs(amount) > MAX_AMOUNT:
        raise CreditError(f"amount must be a non-zero whole number up to {MAX_AMOUNT}")
    if amount < 0 and type != Type.ADJUSTMENT:
        raise CreditError("only an ADJUSTMENT may remove credits")
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CreditError(f"no user named {username!r}")
    try:
        return ledger_apply(
            user_id=user.pk,
            amount=amount,
            type=type,
            reference=f"staff:{reference}" if reference else f"staff:{uuid.uuid4()}",
            metadata={"note": note, "by": by.get_username()},
        )
    except InsufficientCredits as exc:
        raise Overdraw(exc) from exc
