import time
from typing import Any

from django.conf import settings

from blocks.base import Block, BlockError, BlockSchema, Field
from blocks.waiting import WaitFor


class SleepBlock(Block):
    """A wait longer than BLOCK_SLEEP_DURABLE_SECONDS parks the node (no worker) and the
    watchdog wakes it at its time, within a watchdog interval; shorter ones sleep in the
    worker, to the millisecond."""

    name = "sleep"
    description = "Waits the given seconds, then passes `value` on."
    category = "logic"
    # Paid, so demos and tests see charging: 1 per run, plus 1 per 10 s of waiting.
    cost = 1
    cost_per_second = 0.1

    class Input(BlockSchema):
        seconds: float = Field(default=1.0, ge=0, description="Seconds to wait")
        value: Any = Field(default=None, description="Passed on after the wait")

    class Output(BlockSchema):
        output: Any

    def run(self, data, ctx):
        cap = settings.BLOCK_SLEEP_MAX_SECONDS
        if data.seconds > cap:
            raise BlockError(f"sleep of {data.seconds} s is over the limit of {cap} s")
        if data.seconds > settings.BLOCK_SLEEP_DURABLE_SECONDS:
            ctx.wait_for(WaitFor("timer", seconds=data.seconds))
        time.sleep(data.seconds)
        yield "output", data.value

    def resume(self, data, wake, ctx):
        yield "output", data.value
