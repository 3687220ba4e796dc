"""The one Jinja2 environment blocks render user templates with: sandboxed, so a template
cannot reach Python internals, and with arithmetic capped so it cannot exhaust memory."""

from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from .base import BlockError

MAX_POWER = 1000
MAX_REPEAT = 100_000


class _CappedSandbox(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context, operator, left, right):
        if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_POWER:
            raise BlockError(f"exponent {right} is too large for a template")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(n, int)
                if sized and len(seq) * n > MAX_REPEAT:
                    raise BlockError("template repetition is too large")
        return super().call_binop(context, operator, left, right)


_env = _CappedSandbox(autoescape=False, keep_trailing_newline=True, undefined=StrictUndefined)


@lru_cache(maxsize=512)
def _compile(source: str):
    return _env.from_string(source)


def render(source: str, values: dict[str, Any]) -> str:
    try:
        return _compile(source).render(**values)
    except TemplateError as exc:
        raise BlockError(f"template error: {exc}") from exc
