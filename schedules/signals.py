"""A schedule's beat task lives in django-celery-beat's tables, which a cascade from the
graph or the owner cannot reach: this receiver removes it on every path a schedule is
deleted by (the API, the admin, a deleted graph, a deleted user), in the same transaction."""

from django.db.models.signals import post_delete
from django.dispatch import receiver
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from .models import Schedule


@receiver(post_delete, sender=Schedule)
def _delete_beat_task(sender, instance: Schedule, **kwargs) -> None:
    crontab_ids = PeriodicTask.objects.filter(pk=instance.periodic_task_id).values_list(
        "crontab_id", flat=True
    )
    # The crontab is this schedule's own; deleting it takes the PeriodicTask with it.
    CrontabSchedule.objects.filter(pk__in=list(crontab_ids)).delete()
    PeriodicTask.objects.filter(pk=instance.periodic_task_id).delete()
