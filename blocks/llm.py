"""Chat calls to language-model providers through their own client libraries: `openai` for
any OpenAI-compatible Chat Completions endpoint (OpenAI, Azure, vLLM, Ollama, llama.cpp's
server: set the base URL) and `anthropic` for Anthropic's Messages API.

The clients never retry on their own (max_retries=0): a rate limit, a 5xx, a timeout or a
dropped connection becomes a TransientBlockError and the engine's retry policy (backoff with
jitter, ENGINE_RETRY_LIMITS) decides. The API key is the user's own (a node input written as
{"$credential": NAME}) or, where the operator allows it (LLM_PLATFORM_KEYS), the platform's;
only the platform's key makes the run pay for tokens (credits.ModelPrice).

The platform's key goes only to the operator's configured endpoint: a node that names a
`base_url` of its own must bring its own key. Every call leaves through the outbound guard
(outbound/), which follows no redirect and checks the address it connects to."""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal
from urllib.parse import urlsplit

import anthropic
import openai
from django.conf import settings

import outbound
from common import tracing

from . import chat_formats, llm_streams
from .base import Block, BlockError, RunContext, TokenBound, TransientBlockError

Provider = Literal["openai", "anthropic"]


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens

    def as_output(self, model: str, charged: bool) -> dict[str, Any]:
        return {
            "model": model,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "charged": charged,
        }


@dataclass
class Reply:
    text: str
    usage: Usage
    # The tools the model asked to call, in the neutral format (chat_formats.py).
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Caller:
    """Which provider, model, key and endpoint a node talks to; call() sends one chat."""

    provider: Provider
    model: str
    api_key: str
    base_url: str | None
    own_key: bool
    timeout: float
    ctx: RunContext
    # The operator's endpoint may be on an address users' URLs may not reach (a private
    # vLLM, say); it alone is admitted by its host name.
    trusted_host: str | None = None

    def call(self, messages: list[dict[str, Any]], *, system: str, max_tokens: int,
             temperature: float, tools: list[dict[str, Any]] | None = None) -> Reply:  # fmt: skip
        """One chat: `messages` and `tools` in the neutral format (chat_formats.py)."""
        if not self.own_key:  # the platform pays the provider: the balance must cover it
            max_tokens = self.ctx.hold_tokens(
                self.model, prompt_bound(messages, system, tools), max_tokens
            )
        try:
            with self._http_client() as http, tracing.span(
                f"chat {self.model}", self._span_attributes(max_tokens, temperature),
                kind=tracing.CLIENT,
            ) as span:  # fmt: skip
                if self.provider == "anthropic":
                    reply = self._anthropic(http, messages, system, max_tokens, temperature,
                                            tools or [])  # fmt: skip
                else:
                    reply = self._openai(http, messages, system, max_tokens, temperature,
                                         tools or [])  # fmt: skip
                if span is not None:
                    span.set_attribute("gen_ai.usage.input_tokens", reply.usage.prompt_tokens)
                    span.set_attribute("gen_ai.usage.output_tokens", reply.usage.completion_tokens)
        except BaseException as exc:
            # No answer, no tokens: the hold is given back, whatever stopped the call (the
            # provider, the guard, the node's time limit, a cancel). A task that dies
            # outright leaves its hold to the watchdog (executions/recovery.py).
            if not self.own_key:
                self.ctx.meter_tokens(self.model, 0, 0)
            if isinstance(exc, (openai.OpenAIError, anthropic.AnthropicError, *outbound.Refused)):
                raise _block_error(f"{self.provider} {self.model}", exc) from exc
            raise
        if not self.own_key:
            self.ctx.meter_tokens(
                self.model, reply.usage.prompt_tokens, reply.usage.completion_tokens
            )
        self.ctx.log(
            f"{self.provider} {self.model}: {reply.usage.prompt_tokens} prompt + "
            f"{reply.usage.completion_tokens} completion tokens"
            f"{f', {len(reply.tool_calls)} tool call(s)' if reply.tool_calls else ''}"
            f" ({'your key' if self.own_key else 'platform key'})"
        )
        return reply

    def _span_attributes(self, max_tokens: int, temperature: float) -> dict[str, Any]:
        """OpenTelemetry's GenAI conventions for a chat call (never the prompt or answer)."""
        return {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": self.provider,
            "gen_ai.system": self.provider,  # the conventions' older name, still read by tools
            "gen_ai.request.model": self.model,
            "gen_ai.request.max_tokens": max_tokens,
            "gen_ai.request.temperature": temperature,
            "server.address": urlsplit(self.base_url).hostname if self.base_url else None,
            "agentgraph.own_key": self.own_key,
        }

    def _http_client(self):
        hosts = (self.trusted_host,) if self.trusted_host else ()
        return outbound.client(timeout=self.timeout, also_allow_hosts=hosts)

    def _openai(self, http, messages, system, max_tokens, temperature, tools) -> Reply:
        client = openai.OpenAI(
            api_key=self.api_key,
            base_url=self.base_url,
            max_retries=0,
            timeout=self.timeout,
            http_client=http,
        )
        extra: dict[str, Any] = {"tools": chat_formats.openai_tools(tools)} if tools else {}
        wire: Any = chat_formats.openai_messages(messages, system)  # the SDK's TypedDicts
        if self.ctx.stream is not None:
            chunks = client.chat.completions.create(  # type: ignore[call-overload]
                model=self.model, messages=wire, max_tokens=max_tokens, temperature=temperature,
                stream=True, stream_options={"include_usage": True}, **extra,
            )  # fmt: skip
            text, calls, counted = llm_streams.openai_streamed(chunks, self.ctx.stream)
            if counted is None:  # a server that reports no usage pays by the bound
                counted = llm_streams.estimated_usage(prompt_bound(messages, system, tools),
                                                      text, calls)  # fmt: skip
            return Reply(text, Usage(*counted), calls)
        response = client.chat.completions.create(  # type: ignore[call-overload]
            model=self.model,
            messages=wire,
            max_tokens=max_tokens,
            temperature=temperature,
            **extra,
        )
        message = response.choices[0].message if response.choices else None
        usage = response.usage
        return Reply(
            (message.content if message else None) or "",
            Usage(usage.prompt_tokens, usage.completion_tokens) if usage else Usage(),
            chat_formats.openai_tool_calls(message),
        )

    def _anthropic(self, http, messages, system, max_tokens, temperature, tools) -> Reply:
        client = anthropic.Anthropic(
            api_key=self.api_key,
            base_url=self.base_url,
            max_retries=0,
            timeout=self.timeout,
            http_client=http,
        )
        extra: dict[str, Any] = {"system": system} if system else {}
        if "temperature" in _anthropic_parameters():  # newer clients dropped the parameter
            extra["temperature"] = temperature
        if tools:
            extra["tools"] = chat_formats.anthropic_tools(tools)
        wire: Any = chat_formats.anthropic_messages(messages)  # the SDK's TypedDicts
        if self.ctx.stream is not None:
            stream = client.messages.create(  # type: ignore[call-overload]
                model=self.model, messages=wire,
                max_tokens=max_tokens, stream=True, **extra,
            )  # fmt: skip
            text, calls, counted = llm_streams.anthropic_streamed(stream, self.ctx.stream)
            return Reply(text, Usage(*counted), calls)
        response = client.messages.create(  # type: ignore[call-overload]
            model=self.model,
            messages=wire,
            max_tokens=max_tokens,
            **extra,
        )
        text = "".join(block.text for block in response.content if block.type == "text")
        return Reply(
            text,
            Usage(response.usage.input_tokens, response.usage.output_tokens),
            chat_formats.anthropic_tool_calls(response.content),
        )


_TRANSIENT = (
    openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError,
    openai.APIConnectionError, anthropic.RateLimitError, anthropic.InternalServerError,
    anthropic.APITimeoutError, anthropic.APIConnectionError,
)  # fmt: skip


def _block_error(where: str, exc: Exception) -> BlockError:
    """What a provider client's error means for the node: the guard's refusals (raised as
    they are, or wrapped as a connection error) and the far side's 4xx fail it; rate limits,
    5xx, timeouts and dropped connections may pass and are retried."""
    refused = outbound.refusal_of(exc)
    if refused is not None:
        return BlockError(f"{where}: {refused}")
    if isinstance(exc, _TRANSIENT):
        return TransientBlockError(f"{where}: {_describe(exc)}")
    if isinstance(exc, openai.APIStatusError | anthropic.APIStatusError):
        return BlockError(f"{where}: {_describe(exc)}")
    return BlockError(f"{where}: {exc}")


def platform_token_bound(
    block: type[Block], input_data: dict[str, Any], calls_pin: str | None = None
) -> TokenBound | None:
    """What a node of an LLM block may have the platform pay for: its `max_tokens` for each
    call it may make (one, or its `calls_pin`), unless it brings its own key (its own
    endpoint needs one). Inputs a link sets are not known yet: their defaults stand in."""
    if input_data.get("credentials") or not settings.LLM_PLATFORM_KEYS:
        return None

    def pin(name: str) -> Any:
        return input_data.get(name) or block.Input.model_fields[name].get_default(
            call_default_factory=True
        )

    model, max_tokens = pin("model"), pin("max_tokens")
    calls = pin(calls_pin) if calls_pin else 1
    if not (isinstance(model, str) and isinstance(max_tokens, int) and isinstance(calls, int)):
        return None
    return TokenBound(model, max_tokens * calls)


def key_problem(input_data: dict[str, Any], linked: set[str]) -> str | None:
    """Block.start_problem of the model blocks: a node with no key of its own, where the
    operator lends none, can only fail (after its per-run price)."""
    if "credentials" in linked or input_data.get("credentials") or settings.LLM_PLATFORM_KEYS:
        return None
    return (
        "needs an API key: store yours (POST /api/credentials/) and set its `credentials` to "
        '{"$credential": "NAME"} (this server lends none: LLM_PLATFORM_KEYS is off)'
    )


def caller(
    ctx: RunContext,
    *,
    provider: Provider,
    model: str,
    credentials: str | None,
    base_url: str | None,
    timeout: float,
) -> Caller:
    """The caller for a node's inputs: its own key when `credentials` is given, else the
    platform's key (if the operator allows it, and only for the operator's endpoint), else a
    BlockError saying what to do."""
    configured = (
        settings.ANTHROPIC_BASE_URL if provider == "anthropic" else settings.OPENAI_BASE_URL
    ) or None
    own_endpoint = bool(base_url) and _endpoint(base_url) != _endpoint(configured)
    if own_endpoint:
        try:
            outbound.check_url(base_url or "")
        except outbound.DestinationRefused as exc:
            raise BlockError(str(exc)) from exc
    else:
        base_url = configured
    if credentials:
        key, own = credentials, True
    elif own_endpoint:
        raise BlockError(
            "a node with its own `base_url` must bring its own API key: store it "
            '(POST /api/credentials/) and set `credentials` to {"$credential": "NAME"}'
        )
    elif settings.LLM_PLATFORM_KEYS:
        key = settings.ANTHROPIC_API_KEY if provider == "anthropic" else settings.OPENAI_API_KEY
        own = False
        if not key:
            raise BlockError(f"no platform API key is configured for {provider}")
    else:
        raise BlockError(
            "no API key: store yours (POST /api/credentials/) and set `credentials` to "
            '{"$credential": "NAME"}'
        )
    trusted = None if own_endpoint else urlsplit(configured or "").hostname
    return Caller(provider, model, key, base_url, own, min(timeout, 600.0), ctx, trusted)


# Per message, what chat formats add around its text (role markers, separators), in tokens.
MESSAGE_OVERHEAD_TOKENS = 8


def prompt_bound(
    messages: list[dict[str, Any]], system: str, tools: list[dict[str, Any]] | None = None
) -> int:
    """At least as many tokens as the prompt can be: a byte-level tokenizer's token covers
    one byte or more, so the UTF-8 bytes of the text bound its tokens (tool calls, results
    and the tools' schemas count as their JSON)."""
    texts = [system]
    for message in messages:
        content = message.get("content") or ""
        texts.append(content if isinstance(content, str) else json.dumps(content))
        if message.get("tool_calls"):
            texts.append(json.dumps(message["tool_calls"]))
    texts += [json.dumps(tool) for tool in tools or []]
    return sum(len(t.encode()) + MESSAGE_OVERHEAD_TOKENS for t in texts)


def _endpoint(url: str | None) -> str:
    return (url or "").strip().rstrip("/").lower()


@cache
def _anthropic_parameters() -> frozenset[str]:
    return frozenset(inspect.signature(anthropic.resources.Messages.create).parameters)


def _describe(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    message = getattr(exc, "message", None) or str(exc)
    return f"HTTP {status}: {message}" if status else message
