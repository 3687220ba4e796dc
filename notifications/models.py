import secrets

from django.conf import settings
from django.db import models


class Notification(models.Model):
    class Kind(models.TextChoices):
        RUN_COMPLETED = "RUN_COMPLETED"
        RUN_FAILED = "RUN_FAILED"
        LOW_BALANCE = "LOW_BALANCE"
        ZERO_BALANCE = "ZERO_BALANCE"
        REVIEW_REQUESTED = "REVIEW_REQUESTED"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(max_length=32, choices=Kind.choices)
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)
    # E-mail owed to the user (they opted in): set with the notification, cleared once sent,
    # so a lost send task is found again (notifications.redeliver).
    email_pending = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(fields=["user", "-created_at"]),
            models.Index(
                fields=["created_at"],
                condition=models.Q(email_pending=True),
                name="notification_email_pending",
            ),
        ]
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.kind} for {self.user_id}"


def new_webhook_secret() -> str:
    return secrets.token_hex(32)


_new_secret = new_webhook_secret  # the name migration 0002 refers to


class NotificationSettings(models.Model):
    """A user's choices: e-mail or not; the secret their webhooks are signed with."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="notification_settings",
    )
    email_enabled = models.BooleanField(default=False)
    webhook_secret = models.CharField(max_length=64, default=new_webhook_secret)

    def __str__(self):
        return f"notification settings of {self.user_id}"


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "PENDING"
        DELIVERED = "DELIVERED"
        FAILED = "FAILED"

    notification = models.ForeignKey(
        Notification, on_delete=models.CASCADE, related_name="deliveries"
    )
    url = models.URLField(max_length=2000)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"

    def __str__(self):
        return f"webhook {self.pk} ({self.status})"


class WebhookAttempt(models.Model):
    """One try of a delivery: what the far side answered, or why it could not."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="tries")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    duration_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"attempt at {self.created_at}: {self.status_code or self.error}"
