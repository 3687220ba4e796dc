from .services import account_open


def open_account_for_new_user(sender, instance, created, raw=False, **kwargs):
    """Every new user, however created (API, admin, createsuperuser), gets an account with
    the starting grant, in the transaction that creates the user."""
    if created and not raw:
        account_open(instance.pk)
