"""Credits: a balance per user and an append-only ledger of every change to it.

The balance row and the ledger row of a change are written in one transaction (see
services.ledger_apply); a check constraint keeps balances from going negative, a unique
reference makes each change happen once, and a database trigger refuses UPDATE and DELETE
on the ledger (migration 0002): history is never edited, corrections are new rows.
"""

from django.conf import settings
from django.db import models


class CreditBalance(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="credit_balance",
    )
    balance = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(balance__gte=0), name="credit_balance_never_negative"
            )
        ]

    def __str__(self):
        return f"{self.user} has {self.balance}"


class CreditTransaction(models.Model):
    class Type(models.TextChoices):
        GRANT = "GRANT"
        TOP_UP = "TOP_UP"
        USAGE = "USAGE"
        REFUND = "REFUND"
        ADJUSTMENT = "ADJUSTMENT"

    id = models.BigAutoField(primary_key=True)
    # PROTECT: a user with financial history cannot be deleted by accident (deactivate them).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="credit_transactions"
    )
    amount = models.BigIntegerField(help_text="Signed: positive adds credits, negative spends.")
    type = models.CharField(max_length=16, choices=Type.choices)
    balance_after = models.BigIntegerField()
    # The idempotency key: one change per reference, whatever is retried or redelivered.
    reference = models.CharField(max_length=200, unique=True)
    metadata = models.JSONField(default=dict, blank=True)
    # Plain ids, not foreign keys: the ledger outlives deleted graphs and runs.
    execution_id = models.UUIDField(null=True, blank=True)
    node_execution_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["user", "-id"]),
            models.Index(fields=["execution_id"]),
            models.Index(fields=["node_execution_id"]),
        ]
        ordering = ["-id"]

    def __str__(self):
        return f"{self.type} {self.amount:+d} for {self.user_id}"


class BlockCost(models.Model):
    """An administrator's override of a block's prices; empty fields keep the block's own."""

    block = models.CharField(max_length=100, unique=True)
    cost = models.PositiveIntegerField(null=True, blank=True, help_text="Credits per run.")
    cost_per_second = models.FloatField(
        null=True, blank=True, help_text="Credits per second of run time, settled after the run."
    )
    cost_per_mib = models.FloatField(
        null=True, blank=True, help_text="Credits per MiB of output, settled after the run."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(cost_per_second__gte=0) | models.Q(cost_per_second=None))
                & (models.Q(cost_per_mib__gte=0) | models.Q(cost_per_mib=None)),
                name="block_cost_rates_not_negative",
            )
        ]

    def __str__(self):
        return f"price of {self.block}"


class ModelPrice(models.Model):
    """Credits per 1,000 tokens of a language model, charged after each call made with the
    platform's API key (a user's own key pays nothing for tokens). Models without a row pay
    LLM_DEFAULT_PROMPT_PER_1K / LLM_DEFAULT_COMPLETION_PER_1K."""

    model = models.CharField(max_length=200, unique=True)
    prompt_per_1k = models.DecimalField(
        max_digits=12, decimal_places=4, help_text="Credits per 1,000 prompt (input) tokens."
    )
    completion_per_1k = models.DecimalField(
        max_digits=12, decimal_places=4, help_text="Credits per 1,000 completion tokens."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(prompt_per_1k__gte=0) & models.Q(completion_per_1k__gte=0),
                name="model_price_not_negative",
            )
        ]
        ordering = ["model"]

    def __str__(self):
        return f"{self.model}: {self.prompt_per_1k} / {self.completion_per_1k} per 1k tokens"


class TokenHold(models.Model):
    """Credits taken before a language-model call with the platform's key (hold_tokens), open
    until the call is settled: by its own task (charge_tokens), or, when that task died
    mid-call, by the watchdog giving the hold back. Settling is a compare-and-set on
    `settled_at`, so a hold is settled exactly once."""

    call = models.CharField(max_length=200, primary_key=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    amount = models.BigIntegerField()
    model = models.CharField(max_length=200)
    execution_id = models.UUIDField(null=True, blank=True)
    node_execution_id = models.BigIntegerField()
    attempt = models.IntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    settled_at = models.DateTimeField(null=True, blank=True)
    released = models.BooleanField(default=False, help_text="Given back, its task having died.")

    class Meta:
        indexes = [
            models.Index(
                fields=["created_at"],
                condition=models.Q(settled_at__isnull=True),
                name="token_hold_open",
            )
        ]

    def __str__(self):
        return f"{self.amount} held for call {self.call}"
