# Load Celery with Django so that shared tasks bind to our app and
# `transaction.on_commit(task.delay)` works from any process.
from .celery import app as celery_app

__all__ = ("celery_app",)
