from datetime import datetime
from zoneinfo import ZoneInfo, available_timezones

from blocks.base import Block, BlockError, BlockSchema, Field


class CurrentTimeBlock(Block):
    name = "current_time"
    description = "The current date and time in a time zone, formatted (strftime) and ISO 8601."
    category = "data"

    class Input(BlockSchema):
        trigger: object = Field(default=None, description="Any value: runs the block")
        format: str = Field(
            default="%Y-%m-%d %H:%M:%S", max_length=200, description="strftime format"
        )
        timezone: str = Field(default="UTC", description="IANA time zone")

    class Output(BlockSchema):
        time: str = Field(description="Formatted with `format`")
        iso: str = Field(description="ISO 8601 with the offset")
        timestamp: float = Field(description="Seconds since the epoch")

    def run(self, data, ctx):
        if data.timezone not in available_timezones():
            raise BlockError(f"unknown time zone {data.timezone!r}")
        now = datetime.now(ZoneInfo(data.timezone))
        yield "time", now.strftime(data.format)
        yield "iso", now.isoformat()
        yield "timestamp", now.timestamp()
