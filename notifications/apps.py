from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    """Things a user should hear about (low balance, finished runs). Rows are recorded here;
    delivery (stream, e-mail, webhooks) comes with the live-status work."""

    name = "notifications"
    default_auto_field = "django.db.models.BigAutoField"
