"""One ASGI application: HTTP (API, admin, pages) and WebSocket (live status)."""

import os

from django.core.asgi import get_asgi_application

from common.tracing import setup_tracing

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
setup_tracing("agentgraph-web")  # if OTEL_* asks for it; before Django loads its middleware
django_asgi_app = get_asgi_application()

# Imported after Django is set up.
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from common.logs import scrub_server_logs  # noqa: E402
from config.body_limit import BodyLimit  # noqa: E402
from config.websocket import BrowserOriginValidator  # noqa: E402
from executions.consumers import ExecutionStreamConsumer  # noqa: E402

scrub_server_logs()  # access lines print paths, and a path may carry ?token=

application = ProtocolTypeRouter(
    {
        "http": BodyLimit(django_asgi_app),
        "websocket": BrowserOriginValidator(
            AuthMiddlewareStack(
                URLRouter([path("ws/executions/", ExecutionStreamConsumer.as_asgi())])
            )
        ),
    }
)
