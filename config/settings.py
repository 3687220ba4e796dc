"""One settings module, driven by environment variables (12-factor).

Local defaults point at the services `scripts/services.sh` starts, so `manage.py` works from
the project root with no environment at all. With DJANGO_ENV=production, unsafe defaults
(debug, the development secret key, open hosts) are refused at start-up.
"""

import os
from pathlib import Path

import environ

from common import redis_clients

from .logging import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env") if (BASE_DIR / ".env").exists() else None

DJANGO_ENV = env.str("DJANGO_ENV", default="local")
PRODUCTION = DJANGO_ENV == "production"
DEV_SECRET_KEY = "local-development-only-not-a-secret"

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=DEV_SECRET_KEY)
DEBUG = env.bool("DJANGO_DEBUG", default=not PRODUCTION)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["*"] if not PRODUCTION else [])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# The superuser `make run` creates (manage.py ensure_admin), and Flower's basic auth.
DEV_ADMIN_PASSWORD = "admin"
ADMIN_PASSWORD = env.str("ADMIN_PASSWORD", default="" if PRODUCTION else DEV_ADMIN_PASSWORD)
FLOWER_BASIC_AUTH = env.str("FLOWER_BASIC_AUTH", default=f"admin:{ADMIN_PASSWORD}")
FLOWER_PORT = env.int("FLOWER_PORT", default=5555)
FLOWER_ADDRESS = env.str("FLOWER_ADDRESS", default="127.0.0.1")
FLOWER_DB = env.str("FLOWER_DB", default=str(BASE_DIR / ".local" / "flower.db"))

# Fernet keys for users' credentials, newest first (credentials/crypto.py; rotation and how
# to generate one in the README).
DEV_CREDENTIALS_KEY = "bG9jYWwtZGV2ZWxvcG1lbnQtb25seS1ub3QtYS1rZXk="
CREDENTIALS_ENCRYPTION_KEYS = env.list(
    "CREDENTIALS_ENCRYPTION_KEYS", default=[] if PRODUCTION else [DEV_CREDENTIALS_KEY]
)

if PRODUCTION:
    # Behind a TLS-terminating proxy: cookies only over HTTPS, and trust its scheme header.
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SESSION_COOKIE_HTTPONLY = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "servestatic",  # its configuration checks
    "rest_framework",
    "knox",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "channels",
    "config",
    "blocks",
    "graphs",
    "executions",
    "credits",
    "notifications",
    "schedules",
    "triggers",
    "credentials",
    "accounts",
    "idempotency",
    "files",
    "console",
]

MIDDLEWARE = [
    "config.metrics.RequestLatencyMiddleware",
    "config.nul_guard.RefuseNulCharacters",
    "django.middleware.security.SecurityMiddleware",
    # Static files (the admin's) from the ASGI server itself, compressed and cached.
    # ServeStatic (WhiteNoise's async fork): every middleware here is async-capable, so a
    # request under ASGI runs on the event loop up to its view (one thread hop, not three).
    "servestatic.middleware.ServeStaticMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
LOGIN_URL, LOGIN_REDIRECT_URL, LOGOUT_REDIRECT_URL = "login", "/console/runs/", "login"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "console.context.console",
            ]
        },
    }
]

DATABASES = {
    "default": env.db(
        "DATABASE_URL", default="postgres://agentgraph:agentgraph@127.0.0.1:55432/agentgraph"
    )
}
# Persistent connections: a worker runs thousands of node tasks; reconnecting per task would
# cost more than the task itself. Health checks drop connections the server closed.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=600)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# The ASGI server (its launchers set DATABASE_POOL=1) runs each request's sync code in a
# thread of its own: persistent connections would pile up, one per thread. It takes them from
# a bounded psycopg pool instead; requests beyond it wait (up to the timeout) for one.
if env.bool("DATABASE_POOL", default=False):
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DATABASE_POOL_MIN", default=2),
        "max_size": env.int("DATABASE_POOL_MAX", default=20),
        "timeout": env.float("DATABASE_POOL_TIMEOUT", default=30.0),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:56379/0")
# Every Redis client and pool, the cache's too, reconnects and retries (common/redis_clients.py).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": redis_clients.sync_options(),
    }
}
# Redis connections one server process's live stream uses at most (one per run its sockets
# follow, while its read blocks; executions/feeds.py). Live status needs no channel layer.
LIVE_REDIS_CONNECTIONS = env.int("LIVE_REDIS_CONNECTIONS", default=500)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = env.str("STATIC_ROOT", default=str(BASE_DIR / ".local" / "static"))
# Locally files are served from the apps themselves; production serves the collected ones.
SERVESTATIC_USE_FINDERS = DEBUG
Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)  # ServeStatic warns on every request else

# --- API ----------------------------------------------------------------------------------
# Largest request body accepted, in bytes; larger ones get 413 before the body is read
# (config/body_limit.py, in front of Django).
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=5 * 1024 * 1024)
# A body that stops arriving for this long is refused (408): slow senders hold no request.
API_BODY_READ_SECONDS = env.float("API_BODY_READ_SECONDS", default=30.0)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES

# Request rates (DRF throttling counted in Redis, config/throttling.py): per user (token or
# session) and per client address for anonymous requests; "N/second|minute|hour|day".
API_THROTTLE_USER = env.str("API_THROTTLE_USER", default="1200/minute")
API_THROTTLE_ANON = env.str("API_THROTTLE_ANON", default="60/minute")

# API tokens (django-rest-knox, stored hashed): seconds until a new token expires; 0 keeps
# them until revoked (DELETE /api/auth/token/, or the admin's "revoke API tokens").
API_TOKEN_TTL = env.int("API_TOKEN_TTL", default=0)
REST_KNOX = {"TOKEN_TTL": None, "AUTH_HEADER_PREFIX": "Token"}
# How long a write's Idempotency-Key answers with its first response (idempotency/).
IDEMPOTENCY_TTL_HOURS = env.int("IDEMPOTENCY_TTL_HOURS", default=24)
# Seconds a WebSocket ticket (POST /api/auth/ws-ticket/) stays valid; each opens one socket.
WS_TICKET_SECONDS = env.int("WS_TICKET_SECONDS", default=30)

REST_FRAMEWORK = {
    # Proxies in front that append to X-Forwarded-For; 0 trusts only the peer address, so a
    # client cannot pick its own identity for the anonymous rate.
    "NUM_PROXIES": env.int("API_NUM_PROXIES", default=0),
    "DEFAULT_THROTTLE_CLASSES": [
        "config.throttling.UserRateThrottle",
        "config.throttling.AnonRateThrottle",
    ],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["common.api.LimitedJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "common.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "agentgraph API",
    "DESCRIPTION": "Build agent graphs, run them on Celery workers, read their results.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    **{k: "SIDECAR" for k in ("SWAGGER_UI_DIST", "SWAGGER_UI_FAVICON_HREF", "REDOC_DIST")},
}

# --- Celery -------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="amqp://guest:guest@127.0.0.1:55672//")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="redis://127.0.0.1:56379/1")
# Queues: nodes; engine bookkeeping (joins, the watchdog); the rest (notifications, fires,
# clean-ups), so a burst of e-mails never delays a join. Tests use names of their own.
NODE_QUEUE = env.str("CELERY_NODE_QUEUE", default="nodes")
ENGINE_QUEUE = env.str("CELERY_ENGINE_QUEUE", default="engine")
BACKGROUND_QUEUE = env.str("CELERY_BACKGROUND_QUEUE", default="background")
# Blocks whose node tasks go to a queue of their own, e.g. "http_request=io,sleep=io": slow
# I/O on workers sized for waiting (`-Q io`), never holding up the quick nodes.
ENGINE_BLOCK_QUEUES = env.dict("ENGINE_BLOCK_QUEUES", default={})

# --- Engine -------------------------------------------------------------------------------
# Node executions one run tree (a run and every sub-graph run under it) may create; the
# execution that would pass it is never written and the run fails (graphs.md: 10,000).
ENGINE_MAX_NODE_EXECUTIONS = env.int("ENGINE_MAX_NODE_EXECUTIONS", default=10_000)
# Sub-graph runs (agent_executor) one run tree may start, however deep.
ENGINE_MAX_SUBGRAPH_RUNS = env.int("ENGINE_MAX_SUBGRAPH_RUNS", default=100)
# Compiled graph versions each process keeps, counted in nodes plus links (executions.plans).
PLAN_CACHE_ITEMS = env.int("PLAN_CACHE_ITEMS", default=500_000)
# Largest graph document accepted, in nodes and in links.
ENGINE_MAX_GRAPH_NODES = env.int("ENGINE_MAX_GRAPH_NODES", default=20_000)
ENGINE_MAX_GRAPH_LINKS = env.int("ENGINE_MAX_GRAPH_LINKS", default=40_000)
# Time limits: a node's own (block default, or `timeout` in the graph document) is capped by
# ENGINE_NODE_TIMEOUT_CAP; a whole run by ENGINE_MAX_EXECUTION_SECONDS (pinned on the run).
ENGINE_NODE_TIMEOUT_CAP = env.int("ENGINE_NODE_TIMEOUT_CAP", default=3600)
ENGINE_MAX_EXECUTION_SECONDS = env.int("ENGINE_MAX_EXECUTION_SECONDS", default=6 * 3600)
# Transient block errors are retried with backoff and jitter: base * 2^(n-1), at most MAX;
# ENGINE_RETRY_LIMITS overrides blocks' own retry limits (http_request=5,llm_text=3).
ENGINE_RETRY_BASE_SECONDS = env.float("ENGINE_RETRY_BASE_SECONDS", default=1.0)
ENGINE_RETRY_MAX_SECONDS = env.float("ENGINE_RETRY_MAX_SECONDS", default=60.0)
ENGINE_RETRY_LIMITS = {k: int(v) for k, v in env.dict("ENGINE_RETRY_LIMITS", default={}).items()}
# Runs one user may have running (or paused) at once; more wait QUEUED and start, oldest
# first, as theirs end. Sub-graph runs do not count. 0: no cap.
ENGINE_MAX_RUNNING_PER_USER = env.int("ENGINE_MAX_RUNNING_PER_USER", default=50)
# Worker time (node run time, free blocks included) each user may use per clock hour;
# past it their nodes do not start (executions/quotas.py). 0: no budget.
ENGINE_USER_WORKER_SECONDS_PER_HOUR = env.int("ENGINE_USER_WORKER_SECONDS_PER_HOUR", default=7200)
# Largest graph inputs (JSON) one run, or schedule, accepts.
ENGINE_MAX_INPUT_BYTES = env.int("ENGINE_MAX_INPUT_BYTES", default=1024 * 1024)
# Sub-graphs (agent_executor) may nest this deep; a graph that runs itself stops here.
ENGINE_MAX_DEPTH = env.int("ENGINE_MAX_DEPTH", default=5)
# A worker holds a lease on each node it runs, renewed while it runs; a redelivered task
# starts the node again only once the lease has lapsed (its worker is gone).
ENGINE_NODE_LEASE_SECONDS = env.int("ENGINE_NODE_LEASE_SECONDS", default=30)
# The watchdog (every ENGINE_WATCHDOG_INTERVAL s, beat) re-drives runs stalled this long.
ENGINE_STALL_SECONDS = env.int("ENGINE_STALL_SECONDS", default=60)
ENGINE_WATCHDOG_INTERVAL = env.int("ENGINE_WATCHDOG_INTERVAL", default=15)
# Messages a commit decided to publish and the broker has not taken after this many seconds
# (it was down, or the publishing process died) are sent again by each worker's relay,
# which looks every OUTBOX_RELAY_INTERVAL seconds (executions/outbox.py).
OUTBOX_RELAY_AFTER = env.float("OUTBOX_RELAY_AFTER", default=2.0)
OUTBOX_RELAY_INTERVAL = env.float("OUTBOX_RELAY_INTERVAL", default=1.0)
# Finished runs older than this are deleted with their node executions (daily, beat).
EXECUTION_RETENTION_DAYS = env.int("EXECUTION_RETENTION_DAYS", default=30)
# Longest text a template (text_template, output.format) may render, in characters.
BLOCK_TEMPLATE_MAX_CHARS = env.int("BLOCK_TEMPLATE_MAX_CHARS", default=1_000_000)
# What one node execution may produce: bytes of JSON over all its outputs, and yields.
ENGINE_MAX_NODE_OUTPUT_BYTES = env.int("ENGINE_MAX_NODE_OUTPUT_BYTES", default=8 * 1024 * 1024)
ENGINE_MAX_NODE_YIELDS = env.int("ENGINE_MAX_NODE_YIELDS", default=20_000)
ENGINE_MAX_NODE_LOG_LINES = env.int("ENGINE_MAX_NODE_LOG_LINES", default=500)  # per execution
# The combined `outputs` of a run (its output nodes' values), in bytes of JSON.
ENGINE_MAX_RUN_OUTPUT_BYTES = env.int("ENGINE_MAX_RUN_OUTPUT_BYTES", default=16 * 1024 * 1024)
# Longest `sleep` (s); past BLOCK_SLEEP_DURABLE_SECONDS it parks (no worker) until the watchdog
# wakes it. A parked node's wait (any kind) ends by ENGINE_MAX_WAIT_SECONDS.
BLOCK_SLEEP_MAX_SECONDS = env.float("BLOCK_SLEEP_MAX_SECONDS", default=7 * 24 * 3600.0)
BLOCK_SLEEP_DURABLE_SECONDS = env.float("BLOCK_SLEEP_DURABLE_SECONDS", default=30.0)
ENGINE_MAX_WAIT_SECONDS = env.int("ENGINE_MAX_WAIT_SECONDS", default=30 * 24 * 3600)
# ai_agent: most model calls a node may make (its `max_steps` is capped by this), and tokens.
AI_AGENT_MAX_STEPS = env.int("AI_AGENT_MAX_STEPS", default=50)
AI_AGENT_MAX_TOKENS = env.int("AI_AGENT_MAX_TOKENS", default=500_000)
# Outbound requests (http_request, LLM base URLs, webhooks; outbound/) reach only globally
# routable addresses, checked where each connection is made. Operators may open loopback
# (tests do), the private ranges (10/8, 172.16/12, 192.168/16, fc00::/7), networks by CIDR,
# or host names whatever they resolve to. The configured LLM endpoints are always allowed.
OUTBOUND_ALLOW_LOOPBACK = env.bool("OUTBOUND_ALLOW_LOOPBACK", default=False)
OUTBOUND_ALLOW_PRIVATE = env.bool("OUTBOUND_ALLOW_PRIVATE", default=False)
OUTBOUND_ALLOWED_NETWORKS = env.list("OUTBOUND_ALLOWED_NETWORKS", default=[])
OUTBOUND_ALLOWED_HOSTS = env.list("OUTBOUND_ALLOWED_HOSTS", default=[])
# Largest response body any outbound request reads (counted as it streams in).
OUTBOUND_MAX_RESPONSE_BYTES = env.int("OUTBOUND_MAX_RESPONSE_BYTES", default=10 * 1024 * 1024)
HTTP_BLOCK_MAX_TIMEOUT = env.float("HTTP_BLOCK_MAX_TIMEOUT", default=120.0)
HTTP_BLOCK_MAX_RESPONSE_BYTES = env.int("HTTP_BLOCK_MAX_RESPONSE_BYTES", default=4 * 1024 * 1024)
# Node outputs in live events are cut past this many bytes of JSON (the API keeps them whole).
EVENTS_MAX_VALUE_BYTES = env.int("EVENTS_MAX_VALUE_BYTES", default=16 * 1024)

# --- Files (files/) ----------------------------------------------------------------------
# Under FILES_ROOT, or in an S3-compatible bucket (django-storages) when FILES_S3 is set:
# "bucket_name=B,endpoint_url=URL,access_key=K,secret_key=S,region_name=R" (S3Storage's).
FILES_ROOT = env.str("FILES_ROOT", default=str(BASE_DIR / ".local" / "files"))
FILES_S3 = env.dict("FILES_S3", default={})
_FILES_LOCAL = {"location": FILES_ROOT}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "files": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": FILES_S3}
    if FILES_S3
    else {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": _FILES_LOCAL},
}
# One file's largest size, each user's total, what file_read reads, and how long files stay.
FILES_MAX_BYTES = env.int("FILES_MAX_BYTES", default=25 * 1024 * 1024)
FILES_QUOTA_BYTES = env.int("FILES_QUOTA_BYTES", default=1024 * 1024 * 1024)
FILES_READ_MAX_BYTES = env.int("FILES_READ_MAX_BYTES", default=4 * 1024 * 1024)
FILES_RETENTION_DAYS = env.int("FILES_RETENTION_DAYS", default=EXECUTION_RETENTION_DAYS)

# Notifications: e-mail through Django's backend (console locally), webhooks retried with
# backoff (base * 2^n seconds) up to WEBHOOK_MAX_ATTEMPTS tries.
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="agentgraph@localhost")
# The operator's SMTP server (the smtp backend's, and send_email's where allowed).
SEND_EMAIL_OPERATOR_SMTP = env.bool("SEND_EMAIL_OPERATOR_SMTP", default=False)
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=6)
WEBHOOK_RETRY_BASE_SECONDS = env.float("WEBHOOK_RETRY_BASE_SECONDS", default=2.0)
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=10.0)

# Inbound webhook triggers: body cap, deliveries per trigger, signature timestamps' window.
TRIGGER_MAX_BODY_BYTES = env.int("TRIGGER_MAX_BODY_BYTES", default=256 * 1024)
TRIGGER_RATE = env.str("TRIGGER_RATE", default="60/minute")
TRIGGER_REPLAY_SECONDS = env.int("TRIGGER_REPLAY_SECONDS", default=300)

# --- Credits ------------------------------------------------------------------------------
CREDITS_STARTING_GRANT = env.int("CREDITS_STARTING_GRANT", default=100)
# A notification is recorded when a balance drops below this (and when it reaches zero).
CREDITS_LOW_BALANCE_THRESHOLD = env.int("CREDITS_LOW_BALANCE_THRESHOLD", default=10)
# How long a process keeps administrators' price overrides before reading them again.
CREDITS_PRICE_CACHE_SECONDS = env.float("CREDITS_PRICE_CACHE_SECONDS", default=5.0)

# --- Language models (blocks/llm.py) -------------------------------------------------------
# Platform keys: used for nodes that give no `credentials` of their own, only when
# LLM_PLATFORM_KEYS is on; those calls pay for their tokens (credits.ModelPrice).
LLM_PLATFORM_KEYS = env.bool("LLM_PLATFORM_KEYS", default=False)
OPENAI_API_KEY = env.str("OPENAI_API_KEY", default="")
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="")  # any OpenAI-compatible endpoint
ANTHROPIC_API_KEY = env.str("ANTHROPIC_API_KEY", default="")
ANTHROPIC_BASE_URL = env.str("ANTHROPIC_BASE_URL", default="")
LLM_DEFAULT_MODEL = env.str("LLM_DEFAULT_MODEL", default="gpt-4o-mini")
# Credits per 1,000 tokens for models without a price of their own (admin: Model prices).
LLM_DEFAULT_PROMPT_PER_1K = env.float("LLM_DEFAULT_PROMPT_PER_1K", default=1.0)
LLM_DEFAULT_COMPLETION_PER_1K = env.float("LLM_DEFAULT_COMPLETION_PER_1K", default=3.0)

# --- Metrics ------------------------------------------------------------------------------
# Every process writes its counts here (prometheus_client multiprocess mode); /metrics sums
# them. Must be set before prometheus_client is imported, hence here. `make run` empties it.
METRICS_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default=str(BASE_DIR / ".local" / "metrics"))
os.environ["PROMETHEUS_MULTIPROC_DIR"] = METRICS_DIR
Path(METRICS_DIR).mkdir(parents=True, exist_ok=True)
# /metrics answers a bearer token when METRICS_TOKEN is set; otherwise these networks.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=["127.0.0.1/32", "::1/128"])

# A run's trace in the operator's tracing tool, e.g. https://jaeger.example.com/trace/{trace_id}
# (the console links it; traces themselves are configured by OTEL_*: common/tracing.py).
TRACES_URL = env.str("TRACES_URL", default="")
# Readable lines locally, one JSON object per line in production (LOG_FORMAT overrides).
# Either way each record carries execution_id and node_execution_id (common/logs.py).
LOG_FORMAT = env.str("LOG_FORMAT", default="json" if PRODUCTION else "plain")
LOGGING = logging_config(LOG_FORMAT, env.str("LOG_LEVEL", default="INFO"))

# Checked last, once every setting has its value.
if PRODUCTION:
    from .safety import refuse_unsafe_settings

    refuse_unsafe_settings(globals())
