from celery import shared_task

from . import services


@shared_task(name="idempotency.purge_expired")
def purge_expired() -> None:
    services.purge_expired()
