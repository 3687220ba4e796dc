"""The one Jinja2 environment blocks render user templates with: sandboxed, so a template
cannot reach Python internals, with arithmetic and padding capped so it cannot exhaust
memory or spin on huge numbers, and its output cut at BLOCK_TEMPLATE_MAX_CHARS."""

import re
from functools import lru_cache
from typing import Any

from django.conf import settings
from jinja2 import StrictUndefined, TemplateError, meta
from jinja2.filters import do_center, do_format, do_indent
from jinja2.sandbox import SandboxedEnvironment

from .base import BlockError

MAX_POWER = 1000
# Largest number a template may compute, in bits (about 20,000 decimal digits).
MAX_INT_BITS = 65_536
# Longest string or list a template may build along the way, and widest padding.
MAX_REPEAT = 100_000
# String methods that pad or repeat to a width given as their first argument.
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
# Widths and precisions in format specs: "{:>1000000}", "%0999999d", "{:.99999f}".
_SPEC_NUMBER = re.compile(r"(?:[:%][^{}%]*?)(\d{6,})")


def _check_width(width: Any) -> None:
    if isinstance(width, int) and abs(width) > MAX_REPEAT:
        raise BlockError(f"a width of {width} is too large for a template (at most {MAX_REPEAT})")


_NESTED_FIELD = re.compile(r"\{[^{}]*\{")


def _check_spec(text: Any) -> None:
    if isinstance(text, str):
        for number in _SPEC_NUMBER.findall(text):
            _check_width(int(number))
        if _NESTED_FIELD.search(text.replace("{{", "").replace("}}", "")):
            raise BlockError("nested format fields are not allowed in templates")


def _check_int(value: Any) -> Any:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise BlockError(f"a number of more than {MAX_INT_BITS} bits is too large for a template")
    return value


class _CappedSandbox(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%", "<<"})

    def call_binop(self, context, operator, left, right):
        if operator == "**" and isinstance(right, int | float):
            if abs(right) > MAX_POWER:
                raise BlockError(f"exponent {right} is too large for a template")
            if isinstance(left, int) and abs(left) > 1 and left.bit_length() * right > MAX_INT_BITS:
                raise BlockError(f"{operator} would give a number too large for a template")
        if operator == "<<" and isinstance(right, int) and right > MAX_INT_BITS:
            raise BlockError("shift too large for a template")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(n, int)
                if sized and len(seq) * n > MAX_REPEAT:
                    raise BlockError("template repetition is too large")
        if operator == "+":
            sized = isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple)
            if sized and len(left) + len(right) > settings.BLOCK_TEMPLATE_MAX_CHARS:
                raise BlockError("template concatenation is too large")
        if operator == "%":
            _check_spec(left)
        return _check_int(super().call_binop(context, operator, left, right))

    def wrap_str_format(self, value):
        # str.format and format_map are wrapped when they are looked up, not when called.
        if getattr(value, "__name__", "") in ("format", "format_map"):
            _check_spec(getattr(value, "__self__", None))
        return super().wrap_str_format(value)

    def call(__self, __context, __obj, *args, **kwargs):  # Jinja's own signature
        owner, name = getattr(__obj, "__self__", None), getattr(__obj, "__name__", "")
        if isinstance(owner, str) and name in _WIDTH_METHODS and args:
            _check_width(args[0])
        return _check_int(super().call(__context, __obj, *args, **kwargs))


def _center(value, width=80):
    _check_width(width)
    return do_center(value, width)


def _indent(value, width=4, *args, **kwargs):
    _check_width(width if isinstance(width, int) else len(str(width)))
    return do_indent(value, width, *args, **kwargs)


def _format(value, *args, **kwargs):
    _check_spec(value)
    if any(isinstance(a, int) and abs(a) > MAX_REPEAT for a in args):  # "%*d" widths
        raise BlockError("a format argument is too large for a template")
    return do_format(value, *args, **kwargs)


_env = _CappedSandbox(autoescape=False, keep_trailing_newline=True, undefined=StrictUndefined)
_env.filters.update(center=_center, indent=_indent, format=_format)


@lru_cache(maxsize=512)
def _compile(source: str):
    return _env.from_string(source)


def render(source: str, values: dict[str, Any]) -> str:
    """The rendered text; a BlockError past BLOCK_TEMPLATE_MAX_CHARS (counted as it is
    produced, so rendering stops there)."""
    limit = settings.BLOCK_TEMPLATE_MAX_CHARS
    parts, size = [], 0
    try:
        for part in _compile(source).generate(**values):
            size += len(part)
            if size > limit:
                raise BlockError(
                    f"the rendered text is longer than {limit} characters "
                    "(BLOCK_TEMPLATE_MAX_CHARS)"
                )
            parts.append(part)
    except TemplateError as exc:
        raise BlockError(f"template error: {exc}") from exc
    except (OverflowError, MemoryError, RecursionError) as exc:
        raise BlockError(f"template error: {type(exc).__name__}") from exc
    return "".join(parts)


def template_variables(source: str) -> set[str] | None:
    """The names a template reads from its values (not the environment's own functions,
    such as `range`); None when it does not parse (its block says why when it runs)."""
    try:
        names = meta.find_undeclared_variables(_env.parse(source))
    except TemplateError:
        return None
    return names - set(_env.globals)
