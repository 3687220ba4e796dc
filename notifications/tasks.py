from django.conf import settings

from common.tasks import task

from . import services


@task(services.SEND_EMAIL, autoretry_for=(OSError,), retry_backoff=5, database_retries=5)
def send_email(notification_id: int) -> None:
    services.email(notification_id)


@task(services.DELIVER_WEBHOOK, bind=True, database_retries=None)
def deliver_webhook(self, delivery_id: int) -> None:
    try:
        services.webhook_attempt(delivery_id)
    except services.DeliveryFailed as exc:
        # Exponential backoff; webhook_attempt stops at WEBHOOK_MAX_ATTEMPTS.
        delay = settings.WEBHOOK_RETRY_BASE_SECONDS * 2**self.request.retries
        raise self.retry(exc=exc, countdown=delay) from exc


@task("notifications.redeliver", database_retries=0)  # the next beat tick is the retry
def redeliver() -> None:
    services.redeliver()
