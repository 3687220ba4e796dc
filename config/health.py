"""Liveness (/health) and readiness (/ready) for load balancers and orchestrators."""

import logging

import redis
from django.conf import settings
from django.db import connection
from django.http import JsonResponse

from .celery import app

log = logging.getLogger(__name__)


def health(request):
    """The process answers."""
    return JsonResponse({"status": "ok"})


def ready(request):
    """Every service the API needs answers: 200 when all do, 503 naming those that do not."""
    checks = {"database": _database, "redis": _redis, "rabbitmq": _rabbitmq}
    results = {}
    for name, check in checks.items():
        try:
            check()
            results[name] = "ok"
        except Exception:
            # The reason goes to the log, not to an unauthenticated client (it can name
            # hosts, ports and users).
            log.warning("ready: %s is unreachable", name, exc_info=True)
            results[name] = "unreachable"
    healthy = all(value == "ok" for value in results.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": results},
        status=200 if healthy else 503,
    )


def _database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _redis():
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


def _rabbitmq():
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
