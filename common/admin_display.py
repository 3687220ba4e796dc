"""Shared admin rendering: JSON pretty-printed in a scrollable block, cut past a limit."""

import json
from typing import Any

from django.utils.html import format_html

MAX_CHARS = 20_000


def pretty_json(value: Any) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS] + f"\n… ({len(text) - MAX_CHARS} more characters)"
    return format_html(
        '<pre style="max-height:20em;overflow:auto;white-space:pre-wrap;margin:0">{}</pre>', text
    )


def pretty_text(value: str | None) -> str:
    if not value:
        return "-"
    return format_html('<pre style="white-space:pre-wrap;margin:0">{}</pre>', value[:MAX_CHARS])


# Status colours, the console's (console/static/console/console.css).
STATUS_COLOURS = {
    "COMPLETED": "#1a7f37", "FAILED": "#c21d12", "RUNNING": "#9a6700", "QUEUED": "#0969da",
    "REVIEW": "#8250df", "WAITING": "#8250df", "PAUSED": "#57606a", "CANCELLED": "#6e7781",
    "INCOMPLETE": "#6e7781", "pending": "#8250df", "approved": "#1a7f37",
    "rejected": "#c21d12", "timed_out": "#c21d12",
}  # fmt: skip


def status_badge(status: str) -> str:
    """A status as a coloured badge (white on the status's colour)."""
    return format_html(
        '<span style="background:{};color:#fff;border-radius:9px;padding:1px 8px;'
        'font-weight:600;font-size:11px;white-space:nowrap">{}</span>',
        STATUS_COLOURS.get(status, "#6e7781"),
        status.lower(),
    )
