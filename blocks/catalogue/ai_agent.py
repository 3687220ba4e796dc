"""The agent: a language model that calls tools in a loop until it answers.

Every step is durable. After each model answer and after each round of tool results the
conversation is committed (RunContext.checkpoint); a worker that dies resumes the node from
the last commit (a `step` Wake), so a call that completed is neither made nor charged again
and a tool that completed is not run again. Graph tools run as child runs: the node parks
(no worker) until every one of the round has ended, then goes on in a fresh task. Block
tools run in the worker, in parallel when the model asks for several at once."""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, Literal

from django.conf import settings

from blocks.base import Block, BlockError, BlockSchema, Field, RunContext
from blocks.llm import Usage, caller, key_problem, platform_token_bound
from blocks.waiting import GraphCall, Wake


class AiAgentBlock(Block):
    name = "ai_agent"
    simulated_in_dry_run = True
    description = (
        "A language model that calls tools (catalogue blocks, your graphs) in a loop until "
        "it answers; every step is committed, so a crash never repeats a finished one."
    )
    category = "ai"
    cost = 1  # per run, plus the tokens when the platform's key pays (credits.ModelPrice)
    timeout = 600  # per task: a wait for graph tools holds no task
    max_retries = 3  # rate limits, 5xx and timeouts: from the last committed step
    usable_as_tool = False

    class Input(BlockSchema):
        prompt: str = Field(min_length=1, description="The task")
        sys_prompt: str = Field(default="", description="System prompt")
        model: str = Field(default_factory=lambda: settings.LLM_DEFAULT_MODEL, min_length=1)
        provider: Literal["openai", "anthropic"] = "openai"
        credentials: str | None = Field(default=None, description='{"$credential": "NAME"}')
        base_url: str | None = Field(default=None, description="Your own endpoint")
        tools: list[dict[str, Any]] = Field(
            default_factory=list,
            description='Each {"block": NAME} or {"graph_id": ID, "version"?: N}',
        )
        max_steps: int = Field(default=10, ge=1, le=1000, description="Most model calls")
        max_tokens: int = Field(default=1024, ge=1, le=200_000, description="Per answer")
        temperature: float = Field(default=0.0, ge=0.0, le=2.0)
        timeout: float = Field(default=120.0, gt=0, description="Seconds per model call")

    class Output(BlockSchema):
        response: str
        steps: list = Field(description="Each model call and tool call, in order")
        usage: dict = Field(description="model, prompt_tokens, completion_tokens, calls")

    @classmethod
    def simulate(cls, input_data):
        model = input_data.get("model") or settings.LLM_DEFAULT_MODEL
        usage = {"model": model, "prompt_tokens": 0, "completion_tokens": 0, "charged": False,
                 "calls": 0}  # fmt: skip
        return [("response", "[dry run] the agent's answer"), ("steps", []), ("usage", usage)]

    @classmethod
    def start_problem(cls, input_data, linked):
        return key_problem(input_data, linked)

    @classmethod
    def token_bound(cls, input_data):
        return platform_token_bound(cls, input_data, "max_steps")

    def run(self, data, ctx):
        state = {
            "tools": _tool_specs(data.tools, ctx),
            "messages": [{"role": "user", "content": data.prompt}],
            "steps": [],
            "todo": [],
            "calls": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
        }
        yield from self._loop(data, ctx, state)

    def resume(self, data, wake: Wake, ctx):
        if wake.kind in ("step", "pause"):  # a take-over, or the run's resume: the last step
            state = wake.payload
        elif wake.kind == "subgraph":  # the round's graph tools have ended
            state = wake.payload["state"]
            for call in state["todo"]:
                child = wake.payload["children"].get(call["id"])
                _answer(state, call, *_child_result(child), seconds=0.0)
            state["todo"] = []
            ctx.checkpoint(state)
        else:
            raise BlockError(f"ai_agent cannot resume from a {wake.kind} wait")
        yield from self._loop(data, ctx, state)

    def _loop(self, data, ctx: RunContext, state: dict[str, Any]):
        llm = caller(ctx, provider=data.provider, model=data.model, credentials=data.credentials,
                     base_url=data.base_url, timeout=data.timeout)  # fmt: skip
        steps_cap = min(data.max_steps, settings.AI_AGENT_MAX_STEPS)
        while True:
            if state["todo"]:
                _run_tools(state, ctx)  # parks while graph tools run
            if state["calls"] >= steps_cap:
                yield "steps", state["steps"]
                yield "usage", _usage(state, data.model, llm.own_key)
                raise BlockError(f"no final answer within max_steps ({steps_cap}) model calls")
            if state["prompt_tokens"] + state["completion_tokens"] >= settings.AI_AGENT_MAX_TOKENS:
                raise BlockError(
                    f"the node's token budget (AI_AGENT_MAX_TOKENS, {settings.AI_AGENT_MAX_TOKENS})"
                    " is spent"
                )
            started = time.monotonic()
            reply = llm.call(state["messages"], system=data.sys_prompt, max_tokens=data.max_tokens,
                             temperature=data.temperature, tools=state["tools"])  # fmt: skip
            state["calls"] += 1
            state["prompt_tokens"] += reply.usage.prompt_tokens
            state["completion_tokens"] += reply.usage.completion_tokens
            state["messages"].append(
                {"role": "assistant", "content": reply.text, "tool_calls": reply.tool_calls}
            )
            state["steps"].append(
                {"type": "llm", "text": reply.text, "tool_calls": reply.tool_calls,
                 "prompt_tokens": reply.usage.prompt_tokens,
                 "completion_tokens": reply.usage.completion_tokens,
                 "seconds": round(time.monotonic() - started, 3)}
            )  # fmt: skip
            state["todo"] = reply.tool_calls
            ctx.checkpoint(state)  # this answer is never asked for again
            if not reply.tool_calls:
                yield "response", reply.text
                yield "steps", state["steps"]
                yield "usage", _usage(state, data.model, llm.own_key)
                return


def _run_tools(state: dict[str, Any], ctx: RunContext) -> None:
    """Answer the last model turn's tool calls: unknown tools and bad arguments at once,
    block tools in parallel here, graph tools as child runs (the node parks until all have
    ended; `resume` answers them). Commits the answers."""
    tools = {tool["name"]: tool for tool in state["tools"]}
    answered = {m["tool_call_id"] for m in state["messages"] if m["role"] == "tool"}
    blocks, graphs = [], []
    for call in state["todo"]:
        tool = tools.get(call["name"])
        if call["id"] in answered:
            continue  # answered before a crash: never run again
        if tool is None:
            _answer(state, call, None, f"unknown tool {call['name']!r}: nothing was run")
        elif "$unparsed" in call["arguments"]:
            _answer(state, call, None, "the arguments are not a JSON object")
        elif tool["kind"] == "graph":
            graphs.append((call, tool))
        else:
            unpaid = ctx.pay_for_tool(tool["block"], call["id"])
            if unpaid:
                _answer(state, call, None, unpaid)
            else:
                blocks.append((call, tool))
    if blocks:  # in parallel; each answer committed as it comes
        with ThreadPoolExecutor(max_workers=min(8, len(blocks))) as pool:
            running = {
                pool.submit(_run_block, tool["block"], call, ctx): call for call, tool in blocks
            }
            for future in as_completed(running):
                result, error, seconds = future.result()
                _answer(state, running[future], result, error, seconds=seconds)
                ctx.checkpoint(state)
    state["todo"] = [call for call, _ in graphs]
    ctx.checkpoint(state)
    if graphs:
        calls = [
            GraphCall(call["id"], tool["graph_id"], tool.get("version"), call["arguments"])
            for call, tool in graphs
        ]
        failed = ctx.run_graphs(calls, state)  # raises Parked unless none could start
        for call, _ in graphs:
            _answer(state, call, None, failed.get(call["id"], "it did not start"))
        state["todo"] = []
        ctx.checkpoint(state)


def _run_block(name: str, call: dict[str, Any], ctx: RunContext) -> tuple[Any, str | None, float]:
    """One block tool call in this worker: its outputs by pin, or its error."""
    started = time.monotonic()
    block_class = Block.registry[name]
    tool_ctx = RunContext(ctx.user_id, ctx.graph_execution_id, ctx.node_id,
                          ctx.node_execution_id, secrets=ctx.secrets)  # fmt: skip
    outputs: dict[str, list[Any]] = {}
    try:
        for pin, value in block_class().execute(call["arguments"], tool_ctx):
            if pin == "error":
                return outputs or None, str(value), time.monotonic() - started
            outputs.setdefault(pin, []).append(value)
    except BlockError as exc:
        return None, str(exc), time.monotonic() - started
    except Exception as exc:  # a tool's bug is the model's information, not the node's end
        return None, f"{type(exc).__name__}: {exc}", time.monotonic() - started
    return outputs, None, time.monotonic() - started


def _answer(state, call, result, error, *, seconds: float = 0.0) -> None:
    content = json.dumps(result if error is None else {"error": error}, default=str)
    state["messages"].append(
        {"role": "tool", "tool_call_id": call["id"], "name": call["name"], "content": content,
         "is_error": error is not None}
    )  # fmt: skip
    step = {"type": "tool", "id": call["id"], "name": call["name"],
            "arguments": call["arguments"], "seconds": round(seconds, 3)}  # fmt: skip
    step.update({"error": error} if error is not None else {"result": result})
    state["steps"].append(step)


def _child_result(child: dict[str, Any] | None) -> tuple[Any, str | None]:
    if child is None:
        return None, "its run is gone"
    if child["status"] != "COMPLETED":
        return None, f"its run ended {child['status']}: {child.get('error') or ''}".strip()
    return child["outputs"], None


def _tool_specs(tools: list[dict[str, Any]], ctx: RunContext) -> list[dict[str, Any]]:
    """Each tool the node names, as the model sees it (a unique name, a description, the
    JSON Schema of its parameters) and as the agent runs it."""
    specs: list[dict[str, Any]] = []
    for entry in tools:
        spec: dict[str, Any]
        if "block" in entry:
            block_class = Block.registry.get(str(entry["block"]))
            if block_class is None or not block_class.usable_as_tool:
                raise BlockError(f"{entry['block']!r} is not a block an agent can use")
            spec = {"kind": "block", "block": block_class.name, "name": block_class.name,
                    "description": block_class.description or block_class.name,
                    "parameters": block_class.input_schema()}  # fmt: skip
        elif "graph_id" in entry:
            version = entry.get("version")
            described = ctx.describe_graph(str(entry["graph_id"]), version)
            spec = {"kind": "graph", "graph_id": str(entry["graph_id"]), "version": version,
                    **described}  # fmt: skip
        else:
            raise BlockError('a tool is {"block": NAME} or {"graph_id": ID}')
        spec["name"] = _unique(_tool_name(spec["name"]), {s["name"] for s in specs})
        specs.append(spec)
    return specs


def _tool_name(name: str) -> str:
    """What both providers accept as a function name: [a-zA-Z0-9_-], 1 to 64 characters."""
    return re.sub(r"[^a-zA-Z0-9_-]+", "_", name).strip("_")[:64] or "tool"


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate = f"{name[:60]}_{n}"
        n += 1
    return candidate


def _usage(state: dict[str, Any], model: str, own_key: bool) -> dict[str, Any]:
    usage = Usage(state["prompt_tokens"], state["completion_tokens"])
    return {**usage.as_output(model, charged=not own_key), "calls": state["calls"]}
