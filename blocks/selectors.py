from typing import Any

from .registry import all_blocks


def block_catalogue() -> list[dict[str, Any]]:
    return [
        {
            "name": cls.name,
            "description": cls.description,
            "category": cls.category,
            "input_schema": cls.input_schema(),
            "output_schema": cls.output_schema(),
            "static_output": cls.static_output,
            "cost": cls.cost,
        }
        for cls in all_blocks()
    ]
