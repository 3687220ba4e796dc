"""Waits for the world: the node parks in WAITING (no worker) until its run's owner posts an
event with its key (POST /api/events/), and yields the event's payload."""

from typing import Any

from blocks.base import Block, BlockError, BlockSchema, Field
from blocks.waiting import WaitFor


class WaitForEventBlock(Block):
    name = "wait_for_event"
    simulated_in_dry_run = True
    usable_as_tool = False  # waits, starts runs, meters tokens, or is a graph's edge
    description = "Waits for POST /api/events/ with this key, then yields its payload."
    category = "logic"

    class Input(BlockSchema):
        key: str = Field(min_length=1, max_length=200, description="The event's key")
        timeout: float | None = Field(
            default=None, gt=0, description="Seconds to wait (default: the longest wait)"
        )

    class Output(BlockSchema):
        payload: Any

    def run(self, data, ctx):
        ctx.wait_for(WaitFor("event", seconds=data.timeout, key=data.key))
        yield  # not reached: the event resumes the node

    def resume(self, data, wake, ctx):
        if wake.status != "woken":
            raise BlockError(f"no event {data.key!r} came in time")
        yield "payload", wake.payload
