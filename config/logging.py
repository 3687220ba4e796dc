"""The logging configuration (settings.LOGGING): readable lines or one JSON object per line,
each record carrying execution_id and node_execution_id (common/logs.py), secrets scrubbed."""

from typing import Any


def logging_config(log_format: str, level: str) -> dict[str, Any]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "context": {"()": "common.logs.ContextFilter"},
            "scrub": {"()": "common.logs.ScrubFilter"},
        },
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s"},
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(execution_id)s "
                "%(node_execution_id)s %(process)d",
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            },
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                "filters": ["context", "scrub"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            # HTTP clients log every request's URL at INFO, query string (and any key in it)
            # included: only their warnings.
            **{name: {"level": "WARNING"} for name in ("httpx", "httpx2", "httpcore", "httpcore2")},
        },
    }
