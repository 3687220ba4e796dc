"""`GET /metrics`: the series every process counted (common/metrics.py), added up across
processes, plus what is read when scraped (executions/collectors.py: active executions,
queue depths, the outbox)."""

from __future__ import annotations

import ipaddress
import secrets
import time

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

from common.metrics import HTTP_REQUEST_SECONDS
from executions.collectors import collectors


def registry() -> CollectorRegistry:
    reg = CollectorRegistry()
    multiprocess.MultiProcessCollector(reg)
    for collector in collectors():
        reg.register(collector)
    return reg


# --- the endpoint -----------------------------------------------------------------------------


def metrics_view(request):
    """Prometheus text. Allowed with METRICS_TOKEN as a bearer token, or, with no token set,
    from METRICS_ALLOWED_NETWORKS (loopback by default)."""
    if not _allowed(request):
        return JsonResponse({"detail": "metrics are not available to this client"}, status=403)
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)


def _allowed(request) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        given = request.META.get("HTTP_AUTHORIZATION", "")
        return secrets.compare_digest(given.encode(), f"Bearer {token}".encode())
    try:
        client = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(client in ipaddress.ip_network(n) for n in settings.METRICS_ALLOWED_NETWORKS)


class RequestLatencyMiddleware:
    """Times each web request, labelled by its route pattern (not its path: ids in paths
    would make a series per object). Async under ASGI: a sync-only middleware would move
    every request to a thread and back once more."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._timed_async(request)
        started = time.perf_counter()
        response = self.get_response(request)
        _observe(request, response, started)
        return response

    async def _timed_async(self, request):
        started = time.perf_counter()
        response = await self.get_response(request)
        _observe(request, response, started)
        return response


def _observe(request, response, started: float) -> None:
    match = getattr(request, "resolver_match", None)
    route = match.route if match is not None else "unmatched"
    HTTP_REQUEST_SECONDS.labels(request.method, route, str(response.status_code)).observe(
        time.perf_counter() - started
    )
