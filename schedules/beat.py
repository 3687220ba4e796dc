"""Beat's scheduler for this service: django-celery-beat's database scheduler, plus the time
beat decided each task was due, sent as a message header.

A schedule's fire task uses that stamp to find the fire time it belongs to, so a message
that waits in the queue, or is delivered again after a worker died, still counts for the
slot beat meant, and a second fire for that slot is recognised as a duplicate."""

from django_celery_beat.schedulers import DatabaseScheduler

STAMP_HEADER = "fire_stamped_at"


class Scheduler(DatabaseScheduler):
    def reserve(self, entry):
        new_entry = super().reserve(entry)
        headers = dict(new_entry.options.get("headers") or {})
        headers[STAMP_HEADER] = new_entry.last_run_at.isoformat()
        new_entry.options = {**new_entry.options, "headers": headers}
        return new_entry
