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
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.dispatch import Signal
from django.utils import timezone

from common import metrics
from notifications.models import Notification
from notifications.services import notify

from .costs import price_of
from .models import CreditBalance, CreditTransaction, ModelPrice, TokenHold
from .pricing import token_amount, usage_amount

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
    price = price_of(charge.block)
    if price.per_run <= 0:
        return 0
    ledger_apply(
        user_id=charge.user_id,
        amount=-price.per_run,
        type=Type.USAGE,
        reference=f"usage:{charge.node_execution_id}",
        metadata=charge.metadata("run"),
        execution_id=charge.execution_id,
        node_execution_id=charge.node_execution_id,
    )
    return price.per_run


def _model_prices(model: str) -> tuple[Decimal, Decimal]:
    row = (
        ModelPrice.objects.filter(model=model)
        .values_list("prompt_per_1k", "completion_per_1k")
        .first()
    )
    return row or (
        Decimal(str(settings.LLM_DEFAULT_PROMPT_PER_1K)),
        Decimal(str(settings.LLM_DEFAULT_COMPLETION_PER_1K)),
    )


def hold_tokens(
    charge: NodeCharge, *, model: str, prompt_bound: int, max_tokens: int, call: str, attempt: int
) -> int:
    """Before a language-model call with the platform's key: take from the balance what the
    call can cost at most (its prompt's bound and the completion tokens it may write, at the
    model's price), and say how many completion tokens that is: `max_tokens`, or fewer when
    the balance pays for fewer. Raises InsufficientCredits (nothing taken) when it cannot
    pay for the prompt and one completion token: the call does not start. Once per `call`;
    the hold stays open (TokenHold) until charge_tokens or token_hold_release settles it."""
    prompt_price, completion_price = _model_prices(model)
    balance = balance_of(charge.user_id)
    prompt_cost = Decimal(prompt_bound) * prompt_price / 1000
    if completion_price > 0:
        affordable = int((Decimal(balance) - prompt_cost) * 1000 / completion_price)
        allowed = min(max_tokens, affordable)
    else:
        allowed = max_tokens
    if allowed < 1:
        raise InsufficientCredits(
            balance,
            token_amount(prompt_bound, 1, prompt_price, completion_price),
            f"a call to {model} (its prompt and one answer token)",
        )
    amount = token_amount(prompt_bound, allowed, prompt_price, completion_price)
    if amount > 0:
        with transaction.atomic():
            held = ledger_apply(  # not partial: a concurrent spend that got there first stops it
                user_id=charge.user_id,
                amount=-amount,
                type=Type.USAGE,
                reference=f"tokens:{call}",
                metadata=charge.metadata(
                    "tokens-held", model=model, prompt_bound=prompt_bound, max_tokens=allowed
                ),
                execution_id=charge.execution_id,
                node_execution_id=charge.node_execution_id,
            )
            if held.created:
                TokenHold.objects.create(
                    call=call,
                    user_id=charge.user_id,
                    amount=amount,
                    model=model,
                    execution_id=charge.execution_id,
                    node_execution_id=charge.node_execution_id,
                    attempt=attempt,
                )
    return allowed


def charge_tokens(
    charge: NodeCharge, *, model: str, prompt_tokens: int, completion_tokens: int, call: str
) -> int:
    """Settle one language-model call's tokens at the model's price (credits.ModelPrice),
    once per `call` (the node execution, its attempt and the call's number), against what
    hold_tokens took: the difference is given back, or (should the provider count more than
    the bound) taken from what the balance has. Returns the call's cost."""
    prompt_price, completion_price = _model_prices(model)
    amount = token_amount(prompt_tokens, completion_tokens, prompt_price, completion_price)
    with transaction.atomic():
        settled = TokenHold.objects.filter(call=call, settled_at=None).update(
            settled_at=timezone.now()
        )
        hold = TokenHold.objects.filter(call=call).values_list("amount", flat=True).first()
        if hold is not None and not settled:
            return amount  # settled before: a second delivery, or given back by the watchdog
        _settle_tokens(charge, model, prompt_tokens, completion_tokens, call, amount, hold or 0)
    return amount


def _settle_tokens(
    charge: NodeCharge, model: str, prompt_tokens: int, completion_tokens: int, call: str,
    amount: int, held: int,
) -> None:  # fmt: skip
    details = {
        "model": model,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "held": held,
    }
    if amount < held:
        ledger_apply(
            user_id=charge.user_id,
            amount=held - amount,
            type=Type.REFUND,
            reference=f"tokens-unused:{call}",
            metadata=charge.metadata("tokens-unused", **details),
            execution_id=charge.execution_id,
            node_execution_id=charge.node_execution_id,
        )
    elif amount > held:
        ledger_apply(
            user_id=charge.user_id,
            amount=-(amount - held),
            type=Type.USAGE,
            reference=f"tokens-more:{call}",
            metadata=charge.metadata("tokens", **details),
            execution_id=charge.execution_id,
            node_execution_id=charge.node_execution_id,
            partial=True,
        )


def token_hold_release(call: str, reason: str) -> int:
    """Give back a hold whose call its task will never settle (the task died mid-call);
    returns the amount given back, 0 if the hold was settled already. Compare-and-set on the
    hold, so a late settle and this never both happen."""
    with transaction.atomic():
        hold = TokenHold.objects.select_for_update().filter(call=call, settled_at=None).first()
        if hold is None:
            return 0
        TokenHold.objects.filter(call=call).update(settled_at=timezone.now(), released=True)
        ledger_apply(
            user_id=hold.user_id,
            amount=hold.amount,
            type=Type.REFUND,
            reference=f"tokens-unused:{call}",
            metadata={
                "execution_id": str(hold.execution_id),
                "node_execution_id": hold.node_execution_id,
                "part": "tokens-released",
                "model": hold.model,
                "held": hold.amount,
                "reason": reason,
            },
            execution_id=hold.execution_id,
            node_execution_id=hold.node_execution_id,
        )
    return hold.amount


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
