from django.apps import AppConfig


class CreditsConfig(AppConfig):
    """Per-user credits and their ledger (built by the credits issue)."""

    name = "credits"
    default_auto_field = "django.db.models.BigAutoField"
