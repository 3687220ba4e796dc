"""The block base class: a node type with typed pins and a `run` that yields (pin, value).

A block is one module in blocks/catalogue/ defining one subclass of Block; the registry finds
it there. Input and output pins are pydantic models, so every pin has a JSON schema and every
value is checked before the block sees it.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from types import UnionType
from typing import Annotated, Any, ClassVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python

from common.json_values import UnstorableValue, make_storable

from .waiting import GraphCall, Parked, WaitFor, Wake

ERROR_PIN = "error"

BlockOutput = Iterator[tuple[str, Any]] | AsyncIterator[tuple[str, Any]]


class BlockSchema(BaseModel):
    """Base for a block's Input and Output models: unknown pins are refused."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=False)


class BlockError(Exception):
    """Raised by a block for a failure whose message the user should see as is."""


class BlockInputError(BlockError):
    """The merged input of a node does not fit the block's Input model."""


class TransientBlockError(BlockError):
    """A failure of the far side that may pass (5xx, connection error, its timeout): the
    engine retries the node up to the block's `max_retries`, with backoff."""


@dataclass(frozen=True)
class RunContext:
    """What a running block may know about where it runs."""

    user_id: int
    graph_execution_id: str
    node_id: str
    node_execution_id: int
    attempt: int = 1  # 1 for the first run of the node, 2 for its first retry...
    retries_left: int = 0  # retries the engine still allows after this attempt
    depth: int = 0  # how deep in sub-graphs this run is (0: started by a user)
    # Language-model calls with the platform's key (set by the engine; None in tests that
    # run blocks directly): `hold` takes what a call may cost before it is made and answers
    # how many completion tokens the balance pays for (raising BlockError when not one);
    # `meter` settles the call's real tokens after it.
    meter: Callable[[str, int, int], None] | None = None
    hold: Callable[[str, int, int], int] | None = None
    # The secret values resolved into this node's input (credentials): a block must not
    # send them anywhere its author did not (e.g. on to a redirect's other origin).
    secrets: tuple[str, ...] = field(default=(), repr=False)
    # Start another graph of the same user as a child run of this node: (graph id, version
    # or None for the latest, inputs). Raises SubgraphStarted, or BlockError saying why not.
    # Set by the engine; blocks import no app.
    subgraph: Callable[[str, int | None, dict[str, Any]], None] | None = None
    # Park the node until the wait is decided (set by the engine).
    park: Callable[[WaitFor], None] | None = None
    # A block's durable progress (ai_agent's conversation): committed, and given back as a
    # `step` Wake if the node's worker dies and another takes it over (set by the engine).
    save_step: Callable[[Any], None] | None = None
    # Graphs as tools: describe one ({name, description, parameters}), or start several as
    # child runs and park the node until all have ended (set by the engine).
    graph_tool: Callable[[str, int | None], dict[str, Any]] | None = None
    start_graphs: Callable[[list[GraphCall], Any], dict[str, str]] | None = None
    # Text a block produces as it goes (a model's tokens): shown live as `delta` events,
    # coalesced; the node's outputs stay what it yields (set by the engine).
    stream: Callable[[str], None] | None = None
    # Charge a block a tool call runs (its per-run price, once per call id): None when paid,
    # else why not (set by the engine).
    tool_charge: Callable[[str, str], str | None] | None = None
    # The run owner's files (blocks/files.py's FileAccess; set by the engine).
    files: Any = None
    # Where `log` lines go: the node execution's log, shown live and on its run page.
    logger: Callable[[Any, str], None] | None = None

    def log(self, message: Any, level: str = "info") -> None:
        """A line for the node's log (debug, info, warning or error); secrets redacted."""
        if self.logger is not None:
            self.logger(message, level)

    def start_subgraph(self, graph_id: str, version: int | None, inputs: dict[str, Any]):
        if self.subgraph is None:
            raise BlockError("sub-graphs run only inside the engine")
        self.subgraph(graph_id, version, inputs)

    def checkpoint(self, state: Any) -> None:
        """Commit the block's progress: after a crash, the node resumes from the last one
        (a Wake of kind `step` with it as payload) instead of starting over."""
        if self.save_step is not None:
            self.save_step(state)

    def pay_for_tool(self, block: str, call_id: str) -> str | None:
        """Charge a tool call's block before it runs: None when paid, else why not."""
        return self.tool_charge(block, call_id) if self.tool_charge else None

    def describe_graph(self, graph_id: str, version: int | None) -> dict[str, Any]:
        if self.graph_tool is None:
            raise BlockError("graphs as tools run only inside the engine")
        return self.graph_tool(graph_id, version)

    def run_graphs(self, calls: list[GraphCall], state: Any) -> dict[str, str]:
        """Start each call as a child run and park until every one has ended (raises
        Parked); the block resumes with a `subgraph` Wake whose payload is {"state",
        "children": {call id: {"status", "outputs", "error"}}}. When none could start,
        returns why, by call id, and the block goes on."""
        if self.start_graphs is None:
            raise BlockError("graphs as tools run only inside the engine")
        failed = self.start_graphs(calls, state)
        if len(failed) < len(calls):
            raise Parked("graphs")
        return failed

    def wait_for(self, request: WaitFor) -> None:
        """Park the node (no worker, no message) and stop the block: raises Parked. The
        wait's decision runs the block's `resume`, in a worker, with a Wake."""
        if self.park is None:
            raise BlockError("waiting runs only inside the engine")
        self.park(request)
        raise Parked(request.kind)

    def hold_tokens(self, model: str, prompt_bound: int, max_tokens: int) -> int:
        return self.hold(model, prompt_bound, max_tokens) if self.hold else max_tokens

    def meter_tokens(self, model: str, prompt_tokens: int, completion_tokens: int) -> None:
        if self.meter is not None:
            self.meter(model, prompt_tokens, completion_tokens)


@dataclass(frozen=True)
class TokenBound:
    """The most answer tokens a node may have the platform's key pay for (over all its
    model calls), for a preview's cost range (credits.tokens.answer_tokens_cost)."""

    model: str
    answer_tokens: int


class Block:
    """Base class of every block. Subclasses set the class attributes and implement `run`."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    category: ClassVar[str] = "basic"
    Input: ClassVar[type[BlockSchema]]
    Output: ClassVar[type[BlockSchema]]
    static_output: ClassVar[bool] = False
    # Prices in credits (an administrator can override them: credits.BlockCost): per run,
    # charged before the block runs; per second of run time and per MiB of output, settled
    # after it.
    cost: ClassVar[int] = 0
    cost_per_second: ClassVar[float] = 0.0
    cost_per_mib: ClassVar[float] = 0.0
    # Seconds a run may take (a node's `timeout` in the document overrides it; capped by
    # ENGINE_NODE_TIMEOUT_CAP), and how often a TransientBlockError is retried.
    timeout: ClassVar[int] = 300
    max_retries: ClassVar[int] = 0
    # A block that starts runs of its own (agent_executor) gets the credentials in its input
    # sealed for those runs, not in plaintext (credentials/references.py).
    hands_on_credentials: ClassVar[bool] = False
    # A block that acts on the outside world (sends, posts, pays): graphs in safe mode have
    # a person approve each of its nodes' inputs before it runs (see `is_sensitive`).
    sensitive: ClassVar[bool] = False
    # Whether an ai_agent may call it as a tool (run in the agent's worker, outside the
    # engine's own bookkeeping: blocks that wait, start runs or meter tokens may not).
    usable_as_tool: ClassVar[bool] = True
    # A dry run does not run it (it calls a model, sends a request, waits for a person):
    # it yields `simulate`'s placeholder outputs instead.
    simulated_in_dry_run: ClassVar[bool] = False

    registry: ClassVar[dict[str, type[Block]]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            if cls.name in Block.registry and Block.registry[cls.name] is not cls:
                raise TypeError(f"two blocks are named {cls.name!r}")
            Block.registry[cls.name] = cls

    def run(self, data: Any, ctx: RunContext) -> BlockOutput:
        raise NotImplementedError

    def resume(self, data: Any, wake: Wake, ctx: RunContext) -> BlockOutput:
        """The rest of a run that parked (RunContext.wait_for): what to yield now that its
        wait is decided. Runs in a worker, with the same input."""
        raise BlockError(f"block {self.name!r} does not wait")

    @classmethod
    def simulate(cls, input_data: dict[str, Any]) -> list[tuple[str, Any]]:
        """What a dry run yields for this block: a placeholder of its first output pin's
        shape (the branch a success takes). Blocks may say better."""
        from .simulation import placeholder

        schema = cls.Output.model_json_schema()
        first = next(iter(schema.get("properties", {})), None)
        if first is None:
            return []
        return [(first, placeholder(schema["properties"][first], schema.get("$defs", {})))]

    @classmethod
    def token_bound(cls, input_data: dict[str, Any]) -> TokenBound | None:
        """For blocks priced by the tokens they use: their most, None when they pay none."""
        return None

    @classmethod
    def start_problem(cls, input_data: dict[str, Any], linked: set[str]) -> str | None:
        """Why a node with these settings (and these input pins fed by links) cannot do its
        work at all: checked before a run starts, so nothing is charged to find out."""
        return None

    @classmethod
    def is_sensitive(cls, input_data: dict[str, Any]) -> bool:
        """Whether a node of this block with this input acts on the outside world."""
        return cls.sensitive

    # --- pins ---------------------------------------------------------------------------
    @classmethod
    def input_pins(cls) -> dict[str, Any]:
        return dict(cls.Input.model_fields)

    @classmethod
    def output_pins(cls) -> set[str]:
        return set(cls.Output.model_fields) | {ERROR_PIN}

    @classmethod
    def required_inputs(cls) -> set[str]:
        return {name for name, field in cls.Input.model_fields.items() if field.is_required()}

    @classmethod
    def input_schema(cls) -> dict:
        return cls.Input.model_json_schema()

    @classmethod
    def output_schema(cls) -> dict:
        schema = cls.Output.model_json_schema()
        schema.setdefault("properties", {})[ERROR_PIN] = {"title": "Error", "type": "string"}
        return schema

    @classmethod
    def pin_accepts(cls, pin: str, kind: str) -> bool:
        """Whether a dynamic sink pin (`pin_#_key` is kind '#', `pin_$_N` kind '$') may feed
        input `pin`: dict pins take '#' entries, list pins take '$' entries, Any takes both."""
        field = cls.Input.model_fields.get(pin)
        if field is None:
            return False
        wanted = dict if kind == "#" else list
        return any(
            member is Any or (get_origin(member) or member) is wanted
            for member in _union_members(field.annotation)
        )

    @classmethod
    def check_pin_value(cls, pin: str, value: Any) -> str | None:
        """None when `value` fits input `pin`, else the reason it does not."""
        field = cls.Input.model_fields.get(pin)
        if field is None:
            return f"unknown input pin {pin!r}"
        try:
            _pin_adapter(cls.name, pin).validate_python(value)
        except ValidationError as exc:
            return _first_error(exc)
        return None

    # --- running ------------------------------------------------------------------------
    def execute(
        self, input_data: dict, ctx: RunContext, wake: Wake | None = None
    ) -> Iterator[tuple[str, Any]]:
        """Validate `input_data`, run the block (or resume it with `wake`), yield JSON-safe
        (pin, value) pairs."""
        try:
            data = self.Input.model_validate(input_data)
        except ValidationError as exc:
            raise BlockInputError(f"invalid input: {_first_error(exc)}") from exc
        produced = self.run(data, ctx) if wake is None else self.resume(data, wake, ctx)
        pairs: Iterator[tuple[str, Any]] = (
            _drain_async(produced) if inspect.isasyncgen(produced) else produced  # type: ignore[assignment]
        )
        outputs = self.output_pins()
        for pin, value in pairs:
            if pin not in outputs and not self.dynamic_outputs():
                raise BlockError(f"block {self.name!r} yielded unknown pin {pin!r}")
            yield pin, json_safe(value)

    @classmethod
    def dynamic_outputs(cls) -> bool:
        """Blocks whose output pins depend on their input (e.g. sub-graphs) return True."""
        return False


def _union_members(annotation: Any) -> tuple[Any, ...]:
    """The members of `A | B` or Optional[A]; the annotation itself otherwise."""
    if get_origin(annotation) in (Union, UnionType):
        return get_args(annotation)
    return (annotation,)


@cache
def _pin_adapter(block_name: str, pin: str) -> TypeAdapter:
    # Annotated with the field itself, so constraints (ge, min_length...) are checked too.
    field = Block.registry[block_name].Input.model_fields[pin]
    return TypeAdapter(Annotated[field.annotation, field])  # type: ignore[arg-type]


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    return f"{where}: {err['msg']}" if where else err["msg"]


def json_safe(value: Any) -> Any:
    """Values travel as JSON (PostgreSQL jsonb): convert what pydantic can, clean text that
    jsonb cannot hold, refuse NaN, infinities and absurd nesting."""
    try:
        return make_storable(to_jsonable_python(value, fallback=str))
    except UnstorableValue as exc:
        raise BlockError(f"output cannot be stored: {exc}") from exc


_loop: asyncio.AbstractEventLoop | None = None


def _drain_async(agen: Any) -> Iterator[tuple[str, Any]]:
    """Run an async generator block on this process's event loop, one item at a time."""
    global _loop
    if _loop is None or _loop.is_closed():
        _loop = asyncio.new_event_loop()
    while True:
        try:
            yield _loop.run_until_complete(agen.__anext__())
        except StopAsyncIteration:
            return


__all__ = [
    "ERROR_PIN",
    "Block",
    "BlockError",
    "BlockSchema",
    "Field",
    "GraphCall",
    "Parked",
    "RunContext",
    "TransientBlockError",
    "WaitFor",
    "Wake",
]
