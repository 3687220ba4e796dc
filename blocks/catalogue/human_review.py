"""A person looks before the graph goes on: the node parks in REVIEW (no worker) until the
run's owner approves or rejects through /api/reviews/ (or its timeout decides)."""

from typing import Any, Literal

from blocks.base import Block, BlockError, BlockSchema, Field
from blocks.waiting import WaitFor


class HumanReviewBlock(Block):
    name = "human_review"
    simulated_in_dry_run = True
    usable_as_tool = False  # waits, starts runs, meters tokens, or is a graph's edge
    description = (
        "Waits for a person to approve or reject `data` (editing it, when `editable`); "
        "approved data comes out of `approved_data`, rejected of `rejected_data`."
    )
    category = "logic"

    class Input(BlockSchema):
        data: Any = Field(description="What the reviewer decides on")
        message: str = Field(default="", max_length=10_000, description="Instructions")
        editable: bool = Field(default=False, description="May the reviewer change the data")
        timeout: float | None = Field(
            default=None, gt=0, description="Seconds to wait for a decision (default: no limit)"
        )
        on_timeout: Literal["approve", "reject", "fail"] = Field(
            default="fail", description="What the timeout decides"
        )

    class Output(BlockSchema):
        approved_data: Any
        rejected_data: Any
        review_message: str

    @classmethod
    def simulate(cls, input_data):
        """A dry run goes on as if approved as it is."""
        return [("approved_data", input_data.get("data")), ("review_message", "[dry run]")]

    def run(self, data, ctx):
        ctx.wait_for(
            WaitFor(
                "review",
                seconds=data.timeout,
                data=data.data,
                message=data.message,
                editable=data.editable,
                on_timeout=data.on_timeout,
            )
        )
        yield  # not reached: the decision resumes the node

    def resume(self, data, wake, ctx):
        decision = wake.status
        if decision == "timed_out":
            if data.on_timeout == "fail":
                raise BlockError("no review decision came in time")
            decision = "approved" if data.on_timeout == "approve" else "rejected"
        if decision == "approved":
            edited = isinstance(wake.payload, dict) and "data" in wake.payload
            yield "approved_data", wake.payload["data"] if edited else data.data
        else:
            yield "rejected_data", data.data
        yield "review_message", wake.message
