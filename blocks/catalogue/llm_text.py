from typing import Literal

from django.conf import settings

from blocks.base import Block, BlockSchema, Field
from blocks.llm import caller, key_problem, platform_token_bound


class LlmTextBlock(Block):
    """One chat call to a language model; its text on `response`, its tokens on `usage`."""

    name = "llm_text"
    simulated_in_dry_run = True
    usable_as_tool = False  # waits, starts runs, meters tokens, or is a graph's edge
    description = "Asks a language model (OpenAI-compatible or Anthropic) and yields its answer."
    category = "ai"
    # 1 credit per call, plus the tokens (credits.ModelPrice) when the platform's key is used.
    cost = 1
    timeout = 600
    max_retries = 3  # rate limits, 5xx and timeouts

    class Input(BlockSchema):
        prompt: str = Field(min_length=1, description="What to ask")
        sys_prompt: str = Field(default="", description="System prompt")
        model: str = Field(
            default_factory=lambda: settings.LLM_DEFAULT_MODEL,
            min_length=1,
            description="Model name (default: LLM_DEFAULT_MODEL)",
        )
        provider: Literal["openai", "anthropic"] = Field(
            default="openai", description="openai: any OpenAI-compatible endpoint"
        )
        max_tokens: int = Field(default=1024, ge=1, le=200_000, description="Answer length cap")
        temperature: float = Field(
            default=0.0, ge=0.0, le=2.0, description="Sampling temperature (OpenAI-compatible)"
        )
        credentials: str | None = Field(
            default=None, description='Your API key: {"$credential": "NAME"}'
        )
        base_url: str | None = Field(
            default=None,
            description="Your own endpoint (vLLM, Ollama, Azure...); needs your own "
            "`credentials` (the platform's key goes only to the operator's endpoint)",
        )
        timeout: float = Field(default=120.0, gt=0, description="Seconds per call")

    class Output(BlockSchema):
        response: str
        usage: dict = Field(description="model, prompt_tokens, completion_tokens, charged")

    @classmethod
    def simulate(cls, input_data):
        model = input_data.get("model") or settings.LLM_DEFAULT_MODEL
        usage = {"model": model, "prompt_tokens": 0, "completion_tokens": 0, "charged": False}
        return [("response", "[dry run] a model's answer"), ("usage", usage)]

    @classmethod
    def start_problem(cls, input_data, linked):
        return key_problem(input_data, linked)

    @classmethod
    def token_bound(cls, input_data):
        return platform_token_bound(cls, input_data)

    def run(self, data, ctx):
        llm = caller(
            ctx,
            provider=data.provider,
            model=data.model,
            credentials=data.credentials,
            base_url=data.base_url,
            timeout=data.timeout,
        )
        reply = llm.call(
            [{"role": "user", "content": data.prompt}],
            system=data.sys_prompt,
            max_tokens=data.max_tokens,
            temperature=data.temperature,
        )
        yield "response", reply.text
        yield "usage", reply.usage.as_output(data.model, charged=not llm.own_key)
