"""Beat fires `schedules.fire` for each schedule; the service decides what the fire means."""

from datetime import UTC, datetime

from celery import shared_task
from django.db import DatabaseError
from django.utils import timezone

from . import services
from .beat import STAMP_HEADER


@shared_task(
    name=services.FIRE_TASK,
    bind=True,
    autoretry_for=(DatabaseError,),
    retry_backoff=0.5,
    retry_backoff_max=30,
    retry_kwargs={"max_retries": 20},
)
def fire(self, schedule_id: str) -> None:
    # Beat's stamp says which fire time this is, however late the message is handled; a fire
    # sent some other way (e.g. "run task" in beat's admin) counts for the latest fire time.
    stamp = getattr(self.request, STAMP_HEADER, None) or (self.request.headers or {}).get(
        STAMP_HEADER
    )
    stamped_at = datetime.fromisoformat(stamp) if stamp else timezone.now()
    if timezone.is_naive(stamped_at):
        stamped_at = stamped_at.replace(tzinfo=UTC)
    services.schedule_fire(schedule_id, stamped_at)


@shared_task(name="schedules.retention")
def retention() -> None:
    services.occurrences_purge()
