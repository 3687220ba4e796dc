"""The prices in force: each block's own, overridden by an administrator's BlockCost row.

Workers look prices up for every node, so the overrides are cached per process for
CREDITS_PRICE_CACHE_SECONDS (default 5): an admin change takes effect within that time.
"""

import time

from django.conf import settings

from blocks.registry import all_blocks, get_block_class

from .models import BlockCost
from .pricing import Price

_cache: tuple[float, dict[str, tuple]] = (0.0, {})


def _overrides() -> dict[str, tuple]:
    global _cache
    expires, rows = _cache
    now = time.monotonic()
    if now >= expires:
        rows = {
            block: (cost, per_second, per_mib)
            for block, cost, per_second, per_mib in BlockCost.objects.values_list(
                "block", "cost", "cost_per_second", "cost_per_mib"
            )
        }
        _cache = (now + settings.CREDITS_PRICE_CACHE_SECONDS, rows)
    return rows


def price_of(block_name: str) -> Price:
    cls = get_block_class(block_name)
    default = Price(cls.cost, cls.cost_per_second, cls.cost_per_mib) if cls else Price()
    override = _overrides().get(block_name)
    if override is None:
        return default
    cost, per_second, per_mib = override
    return Price(
        default.per_run if cost is None else cost,
        default.per_second if per_second is None else per_second,
        default.per_mib if per_mib is None else per_mib,
    )


def price_list() -> dict[str, Price]:
    return {cls.name: price_of(cls.name) for cls in all_blocks()}


def forget_prices() -> None:
    """Drop this process's cached overrides (after an admin edits one here)."""
    global _cache
    _cache = (0.0, {})
