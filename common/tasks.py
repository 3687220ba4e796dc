"""`task`: the one decorator every Celery task of the project is declared with, and so the
one place its retry policy lives (as Sentry's `instrumented_task`).

Every task may run twice (acks late, redelivery), so every task may be retried: a database
error (a failover, a connection dropped) is retried with exponential backoff and jitter,
`database_retries` times (None: until it succeeds, for the tasks a run cannot do without).
Failures of the task's own making are retried by the task itself (`self.retry`), with the
delay its domain calls for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import shared_task
from django.db import DatabaseError

DATABASE_RETRY_BACKOFF = 0.5  # seconds, doubled per retry
DATABASE_RETRY_BACKOFF_MAX = 30


def task(
    name: str, *, database_retries: int | None = 20, bind: bool = False, **options: Any
) -> Callable:
    """A shared task named `name` (its name is the contract with the broker: publishers may
    send by name without importing the task)."""
    return shared_task(
        name=name,
        bind=bind,
        autoretry_for=(DatabaseError, *options.pop("autoretry_for", ())),
        retry_backoff=options.pop("retry_backoff", DATABASE_RETRY_BACKOFF),
        retry_backoff_max=DATABASE_RETRY_BACKOFF_MAX,
        retry_jitter=True,
        max_retries=database_retries,
        **options,
    )
