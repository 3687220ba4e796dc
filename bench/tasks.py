"""Raw Celery baseline: a task that does nothing, on the same broker and worker settings."""

from celery import shared_task


@shared_task(name="bench.noop", ignore_result=False)
def noop(i=None):
    return i
