from celery import shared_task
from django.conf import settings

from . import services


@shared_task(
    name="notifications.send_email", autoretry_for=(OSError,), retry_backoff=5, max_retries=5
)
def send_email(notification_id: int) -> None:
    services.email(notification_id)


@shared_task(name="notifications.deliver_webhook", bind=True, max_retries=None)
def deliver_webhook(self, delivery_id: int) -> None:
    try:
        services.webhook_attempt(delivery_id)
    except services.DeliveryFailed as exc:
        # Exponential backoff; webhook_attempt stops at WEBHOOK_MAX_ATTEMPTS.
        delay = settings.WEBHOOK_RETRY_BASE_SECONDS * 2**self.request.retries
        raise self.retry(exc=exc, countdown=delay) from exc


@shared_task(name="notifications.redeliver")
def redeliver() -> None:
    services.redeliver()
