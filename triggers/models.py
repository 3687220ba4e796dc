"""Inbound webhooks that start runs of a graph, and every delivery they received."""

import uuid

from django.conf import settings
from django.db import models


class Trigger(models.Model):
    class Auth(models.TextChoices):
        SIGNATURE = "signature", "HMAC-SHA256 signature over timestamp and body"
        TOKEN = "token", "the secret itself in a header (for senders that cannot sign)"

    # The id is the URL's only name for the trigger: random, 122 bits.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="triggers"
    )
    graph = models.ForeignKey("graphs.Graph", on_delete=models.CASCADE, related_name="triggers")
    graph_version = models.PositiveIntegerField(null=True, blank=True)  # None: the latest
    preset = models.ForeignKey(
        "graphs.Preset", on_delete=models.RESTRICT, null=True, blank=True, related_name="triggers"
    )
    enabled = models.BooleanField(default=True)
    auth = models.CharField(max_length=16, choices=Auth.choices, default=Auth.SIGNATURE)
    # The signing secret, encrypted at rest (credentials.crypto); shown once, on creation.
    secret_encrypted = models.TextField()
    # Payload fields a delivery must have to start a run: {"dotted.path": value, ...}.
    filters = models.JSONField(default=dict, blank=True)
    # Set: a delivery starts no run; it is an event (wait_for_event) for this graph's runs
    # waiting on the key found at this "dotted.path" of the payload.
    event_key = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["owner", "-created_at"])]
        ordering = ["-created_at"]

    def __str__(self):
        return f"trigger {self.pk} of graph {self.graph_id}"


class Delivery(models.Model):
    class Status(models.TextChoices):
        ACCEPTED = "accepted"
        FILTERED = "filtered"
        REJECTED = "rejected"

    trigger = models.ForeignKey(Trigger, on_delete=models.CASCADE, related_name="deliveries")
    # The sender's own id for it (X-Delivery-Id, X-GitHub-Delivery), if it sent one.
    delivery_id = models.CharField(max_length=200, blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices)
    reason = models.CharField(max_length=500, blank=True, default="")
    execution = models.ForeignKey(
        "executions.GraphExecution",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    # An event trigger's delivery: how many waiting nodes it woke.
    woken = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [
            # One run per sender's delivery id: only a delivery that was let in holds it (a
            # forged one with a bad signature must not take the id from the real one).
            models.UniqueConstraint(
                fields=["trigger", "delivery_id"],
                condition=~models.Q(delivery_id="") & ~models.Q(status="rejected"),
                name="one_delivery_per_sender_id",
            )
        ]
        indexes = [models.Index(fields=["trigger", "-created_at"])]
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.status} delivery {self.delivery_id or self.pk}"
