"""Chat calls to language-model providers through their own client libraries: `openai` for
any OpenAI-compatible Chat Completions endpoint (OpenAI, Azure, vLLM, Ollama, llama.cpp's
server: set the base URL) and `anthropic` for Anthropic's Messages API.

The clients never retry on their own (max_retries=0): a rate limit, a 5xx, a timeout or a
dropped connection becomes a TransientBlockError and the engine's retry policy (backoff with
jitter, ENGINE_RETRY_LIMITS) decides. The API key is the user's own (a node input written as
{"$credential": NAME}) or, where the operator allows it (LLM_PLATFORM_KEYS), the platform's;
only the platform's key makes the run pay for tokens (credits.ModelPrice)."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import anthropic
import openai
from django.conf import settings

from .base import BlockError, RunContext, TransientBlockError

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

    def call(self, messages: list[dict[str, str]], *, system: str, max_tokens: int,
             temperature: float) -> Reply:  # fmt: skip
        try:
            if self.provider == "anthropic":
                reply = self._anthropic(messages, system, max_tokens, temperature)
            else:
                reply = self._openai(messages, system, max_tokens, temperature)
        except (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError,
                openai.APIConnectionError, anthropic.RateLimitError,
                anthropic.InternalServerError, anthropic.APITimeoutError,
                anthropic.APIConnectionError) as exc:  # fmt: skip
            raise TransientBlockError(f"{self.provider} {self.model}: {_describe(exc)}") from exc
        except (openai.APIStatusError, anthropic.APIStatusError) as exc:
            raise BlockError(f"{self.provider} {self.model}: {_describe(exc)}") from exc
        except (openai.OpenAIError, anthropic.AnthropicError) as exc:
            raise BlockError(f"{self.provider} {self.model}: {exc}") from exc
        if not self.own_key:
            self.ctx.meter_tokens(
                self.model, reply.usage.prompt_tokens, reply.usage.completion_tokens
            )
        return reply

    def _openai(self, messages, system, max_tokens, temperature) -> Reply:
        client = openai.OpenAI(
            api_key=self.api_key, base_url=self.base_url, max_retries=0, timeout=self.timeout
        )
        chat = [{"role": "system", "content": system}] if system else []
        response = client.chat.completions.create(
            model=self.model,
            messages=[*chat, *messages],  # type: ignore[list-item]
            max_tokens=max_tokens,
            temperature=temperature,
        )
        text = response.choices[0].message.content if response.choices else None
        usage = response.usage
        return Reply(
            text or "",
            Usage(usage.prompt_tokens, usage.completion_tokens) if usage else Usage(),
        )

    def _anthropic(self, messages, system, max_tokens, temperature) -> Reply:
        client = anthropic.Anthropic(
            api_key=self.api_key, base_url=self.base_url, max_retries=0, timeout=self.timeout
        )
        extra: dict[str, Any] = {"system": system} if system else {}
        if "temperature" in _anthropic_parameters():  # newer clients dropped the parameter
            extra["temperature"] = temperature
        response = client.messages.create(  # type: ignore[call-overload]
            model=self.model,
            messages=messages,
            max_tokens=max_tokens,
            **extra,
        )
        text = "".join(block.text for block in response.content if block.type == "text")
        return Reply(text, Usage(response.usage.input_tokens, response.usage.output_tokens))


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
    platform's key if the operator allows it, else a BlockError saying what to do."""
    from blocks.catalogue.http_request import check_destination

    if base_url:
        check_destination(base_url)  # a user's endpoint must not reach inside our network
    else:
        base_url = (
            settings.ANTHROPIC_BASE_URL if provider == "anthropic" else settings.OPENAI_BASE_URL
        )
        base_url = base_url or None
    if credentials:
        key, own = credentials, True
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
    return Caller(provider, model, key, base_url, own, min(timeout, 600.0), ctx)


@cache
def _anthropic_parameters() -> frozenset[str]:
    return frozenset(inspect.signature(anthropic.resources.Messages.create).parameters)


def _describe(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    message = getattr(exc, "message", None) or str(exc)
    return f"HTTP {status}: {message}" if status else message
