"""Prices as plain data: what a run of a block costs, and which node a run pays first.

Pure functions, no database: costs.py supplies the prices in force.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

MIB = 1024 * 1024


@dataclass(frozen=True)
class Price:
    per_run: int = 0
    per_second: float = 0.0
    per_mib: float = 0.0

    @property
    def is_free(self) -> bool:
        return not (self.per_run or self.per_second or self.per_mib)

    @property
    def has_usage_part(self) -> bool:
        return bool(self.per_second or self.per_mib)


def usage_amount(price: Price, seconds: float, output_bytes: int) -> int:
    """The part settled after a run: run time and output size, to the nearest whole credit
    (half up), so microseconds of run time cost nothing."""
    if not price.has_usage_part:
        return 0
    raw = price.per_second * max(seconds, 0.0) + price.per_mib * max(output_bytes, 0) / MIB
    return math.floor(raw + 0.5)


def token_amount(
    prompt_tokens: int, completion_tokens: int, prompt_per_1k: Decimal, completion_per_1k: Decimal
) -> int:
    """Whole credits for one call's tokens, rounded up (a call that used tokens costs >= 1
    when its model has a price)."""
    exact = (
        Decimal(prompt_tokens) * prompt_per_1k + Decimal(completion_tokens) * completion_per_1k
    ) / 1000
    return int(exact.to_integral_value(rounding=ROUND_CEILING))
