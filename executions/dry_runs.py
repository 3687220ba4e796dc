"""Dry runs: a run that goes through the graph without acting on the world. Blocks that
leave the process (Block.simulated_in_dry_run: model calls, requests, reviews, events)
yield their simulated outputs (Block.simulate) instead of running; pure blocks
(templates, conditions, data helpers) run for real, so branching can be tried. Nothing is
charged, no review is asked, no notification sent; the record says `dry_run`."""

from __future__ import annotations

from blocks.base import ERROR_PIN, BlockError, json_safe
from blocks.registry import get_block_class

from .block_runs import Outcome
from .claims import ClaimedNode


def dry_run_outcome(claimed: ClaimedNode) -> Outcome | None:
    """The simulated outcome of a node of a dry run, or None if its block runs for real."""
    if not claimed.dry_run:
        return None
    cls = get_block_class(claimed.block)
    if cls is None or not cls.simulated_in_dry_run:
        return None
    try:
        outputs = [(pin, json_safe(value)) for pin, value in cls.simulate(claimed.input_data)]
    except BlockError as exc:
        return Outcome(error=str(exc))
    return Outcome(outputs=[(pin, v) for pin, v in outputs if pin != ERROR_PIN])
