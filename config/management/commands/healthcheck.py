"""Container healthchecks, one per role: exit 0 when healthy, 1 (with the reason) if not.

web     GET /ready on the local ASGI server (database, Redis, RabbitMQ)
worker  this host's Celery worker answers a ping
beat    beat has sent the watchdog task recently (it runs every ENGINE_WATCHDOG_INTERVAL s)
flower  Flower's /healthcheck answers
"""

import socket
import urllib.request
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

# Beat saves last-run times every few minutes (its sync interval), not on every send.
BEAT_SILENCE_LIMIT = timedelta(minutes=10)


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("role", choices=["web", "worker", "beat", "flower"])
        parser.add_argument("--port", type=int, default=None)

    def handle(self, *args, role, port, **options):
        check = getattr(self, f"_{role}")
        try:
            detail = check(port)
        except Exception as exc:
            raise CommandError(f"{role} unhealthy: {exc}") from exc
        self.stdout.write(f"{role} healthy: {detail}")

    def _web(self, port):
        with urllib.request.urlopen(f"http://127.0.0.1:{port or 8000}/ready", timeout=5) as r:
            return r.read().decode()

    def _worker(self, port):
        from config.celery import app

        name = f"worker@{socket.gethostname()}"
        if not app.control.ping(destination=[name], timeout=3):
            raise RuntimeError(f"{name} did not answer a ping")
        return name

    def _beat(self, port):
        from django_celery_beat.models import PeriodicTask

        last = (
            PeriodicTask.objects.filter(task="executions.watchdog")
            .values_list("last_run_at", flat=True)
            .first()
        )
        if last is None or timezone.now() - last > BEAT_SILENCE_LIMIT:
            raise RuntimeError(f"the watchdog was last sent at {last}")
        return f"watchdog sent at {last.isoformat()}"

    def _flower(self, port):
        url = f"http://127.0.0.1:{port or settings.FLOWER_PORT}/healthcheck"
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode()
