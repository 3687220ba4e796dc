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
