"""Language-model calls paid with the platform's key: what a call may cost is held before it
is made (a TokenHold), and settled once after it, by the call's own task or, when that task
died, by the watchdog (token_hold_release). Settling is a compare-and-set on the hold."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import CreditTransaction, ModelPrice, TokenHold
from .pricing import token_amount
from .services import InsufficientCredits, NodeCharge, balance_of, ledger_apply

Type = CreditTransaction.Type


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


def answer_tokens_cost(model: str, answer_tokens: int) -> int:
    """What `answer_tokens` completion tokens of `model` cost (a preview's upper bound for a
    token-priced node; its prompt's tokens are known only once it is written)."""
    prompt_price, completion_price = _model_prices(model)
    return token_amount(0, answer_tokens, prompt_price, completion_price)


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
