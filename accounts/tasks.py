from celery import shared_task

from . import services


@shared_task(name="accounts.purge_expired_tokens")
def purge_expired_tokens() -> None:
    services.tokens_purge_expired()
