from django.apps import AppConfig


class CreditsConfig(AppConfig):
    """Per-user credits: balances, the append-only ledger, block prices, node charging."""

    name = "credits"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_save

        from .signals import open_account_for_new_user

        post_save.connect(
            open_account_for_new_user, sender=get_user_model(), dispatch_uid="credits-open-account"
        )
