"""Cron schedules of graph runs, and what happened at each of their fire times.

Each schedule owns one django-celery-beat PeriodicTask (with its own CrontabSchedule in the
schedule's time zone) that beat fires; services.py keeps the two in step in one transaction.
"""

import uuid

from django.conf import settings
from django.db import models
from django_celery_beat.models import PeriodicTask


class Overlap(models.TextChoices):
    SKIP = "skip", "skip while the previous run is unfinished"
    ALLOW = "allow", "allow overlapping runs"


class Schedule(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="schedules"
    )
    graph = models.ForeignKey("graphs.Graph", on_delete=models.CASCADE, related_name="schedules")
    # A version number, or None for whatever version is the latest when it fires.
    graph_version = models.PositiveIntegerField(null=True, blank=True)
    cron = models.CharField(max_length=200)
    timezone = models.CharField(max_length=64, default="UTC")
    inputs = models.JSONField(default=dict, blank=True)
    # A preset of the graph whose inputs (as they are when it fires) `inputs` go on top of,
    # and whose version it runs unless `graph_version` names one. A preset in use by a
    # schedule is not deleted (RESTRICT); deleting the graph deletes both.
    preset = models.ForeignKey(
        "graphs.Preset",
        on_delete=models.RESTRICT,
        null=True,
        blank=True,
        related_name="schedules",
    )
    # Credits each of its runs (with its sub-graph runs) may spend; null: the preset's, if any.
    budget = models.PositiveIntegerField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    overlap = models.CharField(max_length=8, choices=Overlap.choices, default=Overlap.SKIP)
    # Beat's side of this schedule. Deleting it (say from beat's admin) deletes the schedule.
    periodic_task = models.OneToOneField(
        PeriodicTask, on_delete=models.CASCADE, related_name="agent_schedule"
    )
    # When the current cron, time zone and enabled state took effect: fire times before it
    # are not this schedule's to run or to report missed.
    armed_at = models.DateTimeField()
    # The fire time of the last run this schedule started.
    last_run_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["owner", "-created_at"])]
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.cron} ({self.timezone}) of graph {self.graph_id}"


class Occurrence(models.Model):
    """One fire time of a schedule and its outcome. Unique per (schedule, fire time): a
    second fire for the same time (beat twice, a redelivered task) finds it and does nothing."""

    class Outcome(models.TextChoices):
        STARTED = "started"
        SKIPPED = "skipped"

    class Reason(models.TextChoices):
        OVERLAP = "overlap", "the previous run of this schedule is unfinished"
        INSUFFICIENT_CREDITS = "insufficient_credits", "not enough credits"
        GRAPH_INVALID = "graph_invalid", "the graph or its inputs are invalid"
        MISSED = "missed", "beat did not fire at this time"
        DISABLED = "disabled", "the schedule was disabled"

    id = models.BigAutoField(primary_key=True)
    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="occurrences")
    fire_time = models.DateTimeField()
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    reason = models.CharField(max_length=32, choices=Reason.choices, blank=True, default="")
    detail = models.TextField(blank=True, default="")
    execution = models.ForeignKey(
        "executions.GraphExecution",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["schedule", "fire_time"], name="occurrence_unique_fire_time"
            )
        ]
        ordering = ["-fire_time"]

    def __str__(self):
        return f"{self.fire_time:%Y-%m-%d %H:%M} {self.outcome} {self.reason}".strip()
