"""The block catalogue as users see it: each block's pins and the prices in force."""

from typing import Any

from blocks.registry import all_blocks

from .costs import price_list


def block_catalogue() -> list[dict[str, Any]]:
    """Every block with its pins and the prices in force (an administrator's override, if
    any, else the block's own)."""
    prices = price_list()
    return [
        {
            "name": cls.name,
            "description": cls.description,
            "category": cls.category,
            "input_schema": cls.input_schema(),
            "output_schema": cls.output_schema(),
            "static_output": cls.static_output,
            "cost": prices[cls.name].per_run,
            "cost_per_second": prices[cls.name].per_second,
            "cost_per_mib": prices[cls.name].per_mib,
        }
        for cls in all_blocks()
    ]
