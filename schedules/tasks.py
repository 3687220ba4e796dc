"""Beat fires `schedules.fire` for each schedule; the service decides what the fire means."""

from datetime import UTC, datetime

from django.utils import timezone

from common.tasks import task

from . import services
from .beat import STAMP_HEADER


@task(services.FIRE_TASK, bind=True)
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


@task("schedules.retention")
def retention() -> None:
    services.occurrences_purge()
