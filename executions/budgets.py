"""What one node execution may spend, as plain functions: its time limit, its retries and
their backoff, and what it may yield (OutputBudget)."""

from __future__ import annotations

import json
from typing import Any


class OutputBudget:
    """What one node execution may yield: `max_yields` values and `max_bytes` of JSON,
    counted as they come (ENGINE_MAX_NODE_YIELDS, ENGINE_MAX_NODE_OUTPUT_BYTES)."""

    def __init__(self, max_yields: int, max_bytes: int):
        self.max_yields, self.max_bytes = max_yields, max_bytes
        self.yields, self.size = 0, 0

    def spend(self, value: Any) -> str | None:
        """None while within the budget, else what was passed."""
        self.yields += 1
        if self.yields > self.max_yields:
            return f"the node yielded more than {self.max_yields} values (ENGINE_MAX_NODE_YIELDS)"
        self.size += json_size(value)
        if self.size > self.max_bytes:
            return (
                f"the node's outputs are larger than {self.max_bytes} bytes "
                "(ENGINE_MAX_NODE_OUTPUT_BYTES)"
            )
        return None


def json_size(value: Any) -> int:
    """About how many bytes `value` takes as JSON: exact for containers and long text,
    near enough (and without an encoding pass) for scalars and short text."""
    if value is None or isinstance(value, bool | int | float):
        return 8
    if isinstance(value, str) and len(value) < 256:
        return len(value) + 2
    return len(json.dumps(value, separators=(",", ":")))


def node_time_limit(block_default: int, node_timeout: int | None, cap: int) -> int:
    """Seconds a node may run: its own `timeout`, else its block's, never above the cap."""
    return max(1, min(node_timeout or block_default, cap))


def retry_limit(block_name: str, block_default: int, overrides: dict[str, int]) -> int:
    return max(0, overrides.get(block_name, block_default))


def retry_delay(attempt: int, base: float, cap: float, jitter: float) -> float:
    """Exponential backoff with jitter before retry number `attempt` (1, 2, ...): a delay in
    [0.5, 1.5) x base x 2^(attempt-1), at most `cap`. `jitter` is uniform in [0, 1)."""
    return min(cap, base * 2 ** (attempt - 1) * (0.5 + jitter))
