"""OpenTelemetry traces: off unless configured, one trace per run tree when on.

On when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set (and
`OTEL_SDK_DISABLED` is not `true`); the rest of the standard `OTEL_*` variables (service
name, resource attributes, headers, sampler) apply as the SDK reads them. Spans go out over
OTLP/HTTP in batches, from a thread of each process.

The libraries' own instrumentations make most spans: Django (each request), Celery (each
task published and run, the context carried in the message's headers, so a node's span is
the child of whatever published it on any host), psycopg (each statement) and redis. The
project adds its own where the libraries cannot know: a node's queue wait and block run,
model calls (GenAI conventions), waits, outbound requests (outbound/transport.py).

`ENABLED` is a plain module flag: callers on the hot path test it and skip span code
entirely when tracing is off (the bench runs with it off)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context, propagate, trace

from .logs import scrub

log = logging.getLogger(__name__)

ENABLED = False
TRACER_NAME = "agentgraph"
CLIENT = trace.SpanKind.CLIENT
_TRACEPARENT = "traceparent"


def configured(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for traces (an OTLP endpoint, the SDK not disabled)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def setup_tracing(service: str) -> bool:
    """Install the SDK and the instrumentations in this process, once, if configured.
    `service` names the process's role (web, worker) unless OTEL_SERVICE_NAME does."""
    global ENABLED
    if ENABLED or not configured():
        return ENABLED
    # Imported only here: a process that does not trace never loads the SDK.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    # Before Django loads its middleware (config/asgi.py). Probes and scrapes are not
    # traced unless OTEL_PYTHON_DJANGO_EXCLUDED_URLS says otherwise.
    excluded = os.environ.get("OTEL_PYTHON_DJANGO_EXCLUDED_URLS", "/health,/ready,/metrics")
    DjangoInstrumentor().instrument(request_hook=_scrub_request_span, excluded_urls=excluded)
    CeleryInstrumentor().instrument()
    PsycopgInstrumentor().instrument(enable_commenter=False)
    RedisInstrumentor().instrument()
    ENABLED = True
    log.info("tracing on: %s spans go out over OTLP/HTTP", service)
    return True


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def flush(timeout_ms: int = 5000) -> None:
    """Send what is batched (a worker process about to exit, a test)."""
    provider = trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    if force_flush is not None:
        force_flush(timeout_ms)


def current_traceparent() -> str:
    """The W3C `traceparent` of the current span ("" when tracing is off or no span is)."""
    if not ENABLED:
        return ""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get(_TRACEPARENT, "")


def trace_id_of(traceparent: str) -> str:
    """The trace id inside a `traceparent` (00-<trace id>-<span id>-<flags>), or ""."""
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else ""


def inject(headers: dict[str, str]) -> None:
    """Add the current context's `traceparent` (and `tracestate`) to outgoing headers."""
    if ENABLED:
        propagate.inject(headers)


@contextmanager
def continued(traceparent: str | None) -> Iterator[None]:
    """Make `traceparent` the current context for what runs inside (a message sent on a
    run's behalf from outside its trace: a relay's re-send, a review's wake)."""
    if not (ENABLED and traceparent):
        yield
        return
    token = context.attach(propagate.extract({_TRACEPARENT: traceparent}))
    try:
        yield
    finally:
        context.detach(token)


@contextmanager
def span(
    name: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
) -> Iterator[trace.Span | None]:
    """A child span of the current one around the block (None inside when tracing is off).
    An exception leaving the block is recorded on it and marks it as an error."""
    if not ENABLED:
        yield None
        return
    with tracer().start_as_current_span(name, kind=kind, attributes=_clean(attributes)) as s:
        yield s


def past_span(
    name: str,
    start_ns: int,
    end_ns: int,
    attributes: Mapping[str, Any] | None = None,
    *,
    parent: str | None = None,
) -> None:
    """Record a span that already happened (a queue wait, a wait for a review), as a child
    of `parent` (a traceparent) or of the current span."""
    if not ENABLED:
        return
    ctx = propagate.extract({_TRACEPARENT: parent}) if parent else None
    s = tracer().start_span(name, context=ctx, start_time=start_ns, attributes=_clean(attributes))
    s.end(end_time=max(start_ns, end_ns))


def failed(s: trace.Span | None, message: str) -> None:
    """Mark a span as failed with a message (a node whose block failed without raising)."""
    if s is not None:
        s.set_status(trace.Status(trace.StatusCode.ERROR, message[:500]))


# Where the instrumentations put a request's URL; a query may carry a token.
_URL_ATTRIBUTES = ("http.url", "url.full", "http.target", "url.query")


def _scrub_request_span(span: trace.Span, request: Any) -> None:
    attributes = getattr(span, "attributes", None) or {}
    for key in _URL_ATTRIBUTES:
        value = attributes.get(key)
        if isinstance(value, str) and value:
            # A bare query ("token=…", url.query) is scrubbed as the query it is.
            bare = key == "url.query" and not value.startswith("?")
            span.set_attribute(key, scrub(f"?{value}")[1:] if bare else scrub(value))


def _clean(attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """OpenTelemetry takes str, bool, int, float or lists of them; None means "not known"."""
    if not attributes:
        return None
    return {k: v for k, v in attributes.items() if v is not None}
