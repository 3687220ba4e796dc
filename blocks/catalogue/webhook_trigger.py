from typing import Any

from blocks.base import Block, BlockError, BlockSchema, Field

# The graph input a trigger's delivery arrives under (a run started by hand may give one too,
# to try the graph): the engine hands it to every webhook_trigger node as `delivery`.
WEBHOOK_INPUT = "$webhook"


class WebhookTriggerBlock(Block):
    """Where a run started by a webhook trigger begins: the delivery's body, headers and
    query string."""

    name = "webhook_trigger"
    usable_as_tool = False  # waits, starts runs, meters tokens, or is a graph's edge
    description = (
        "Starts a graph from an inbound webhook (POST /api/graphs/{id}/triggers/): outputs "
        "the delivery's JSON body, its headers (without secrets) and its query string."
    )
    category = "io"

    class Input(BlockSchema):
        delivery: dict[str, Any] | None = Field(
            default=None,
            description='Filled by the trigger: {"payload", "headers", "query"}; a run '
            f'started by hand may give one as the graph input "{WEBHOOK_INPUT}"',
        )

    class Output(BlockSchema):
        payload: Any
        headers: dict[str, str]
        query: dict[str, str]

    def run(self, data, ctx):
        if data.delivery is None:
            raise BlockError(
                "no delivery: this graph starts from its webhook trigger's URL (or give one "
                f'as the graph input "{WEBHOOK_INPUT}")'
            )
        yield "payload", data.delivery.get("payload")
        yield "headers", data.delivery.get("headers") or {}
        yield "query", data.delivery.get("query") or {}
