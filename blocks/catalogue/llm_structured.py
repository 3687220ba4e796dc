import json
from typing import Literal

from django.conf import settings

from blocks.base import Block, BlockError, BlockSchema, Field
from blocks.llm import Usage, caller, key_problem, platform_token_bound

RESERVED = {"response", "usage", "error"}
FORMAT_PROMPT = (
    "Answer with one JSON object and nothing else: no prose, no code fence. It must have "
    "exactly these keys, each with a value as described:\n{fields}"
)


class LlmStructuredBlock(Block):
    """A language model's answer as a JSON object with the fields asked for. A malformed
    answer is sent back with what was wrong, up to `attempts` times."""

    name = "llm_structured"
    simulated_in_dry_run = True
    usable_as_tool = False  # waits, starts runs, meters tokens, or is a graph's edge
    description = "Asks a language model for JSON with `expected_format`'s fields; one pin each."
    category = "ai"
    cost = 1
    timeout = 900
    max_retries = 3

    class Input(BlockSchema):
        prompt: str = Field(min_length=1)
        expected_format: dict[str, str] = Field(
            min_length=1, description="{field: description} the answer must have"
        )
        sys_prompt: str = ""
        model: str = Field(
            default_factory=lambda: settings.LLM_DEFAULT_MODEL,
            min_length=1,
            description="Model name (default: LLM_DEFAULT_MODEL)",
        )
        provider: Literal["openai", "anthropic"] = "openai"
        max_tokens: int = Field(default=1024, ge=1, le=200_000, description="Answer length cap")
        temperature: float = Field(
            default=0.0, ge=0.0, le=2.0, description="Sampling temperature (OpenAI-compatible)"
        )
        attempts: int = Field(default=3, ge=1, le=10, description="Answers asked for at most")
        credentials: str | None = Field(default=None, description='{"$credential": "NAME"}')
        base_url: str | None = Field(
            default=None, description="Your own endpoint; needs your own `credentials`"
        )
        timeout: float = Field(default=120.0, gt=0)

    class Output(BlockSchema):
        response: dict = Field(description="The answer; each field also on its own pin")
        usage: dict

    @classmethod
    def dynamic_outputs(cls) -> bool:
        return True  # one pin per field of expected_format

    @classmethod
    def start_problem(cls, input_data, linked):
        return key_problem(input_data, linked)

    @classmethod
    def token_bound(cls, input_data):
        return platform_token_bound(cls, input_data, "attempts")

    def run(self, data, ctx):
        clashes = RESERVED & set(data.expected_format)
        if clashes:
            raise BlockError(f"expected_format may not use the pin names {sorted(clashes)}")
        llm = caller(ctx, provider=data.provider, model=data.model,
                     credentials=data.credentials, base_url=data.base_url,
                     timeout=data.timeout)  # fmt: skip
        fields = "\n".join(f'- "{k}": {v}' for k, v in data.expected_format.items())
        system = "\n\n".join(p for p in (data.sys_prompt, FORMAT_PROMPT.format(fields=fields)) if p)
        messages = [{"role": "user", "content": data.prompt}]
        total = Usage()
        problem = ""
        for _ in range(data.attempts):
            reply = llm.call(messages, system=system, max_tokens=data.max_tokens,
                             temperature=data.temperature)  # fmt: skip
            total.add(reply.usage)
            answer, problem = parse_answer(reply.text, list(data.expected_format))
            if answer is not None:
                yield "response", answer
                for key in data.expected_format:
                    yield key, answer[key]
                yield "usage", total.as_output(data.model, charged=not llm.own_key)
                return
            messages += [
                {"role": "assistant", "content": reply.text},
                {"role": "user", "content": f"That answer was not valid: {problem}. "
                 "Answer again with only the JSON object."},
            ]  # fmt: skip
        raise BlockError(f"no valid answer in {data.attempts} attempt(s): {problem}")


def parse_answer(text: str, keys: list[str]) -> tuple[dict | None, str]:
    """The JSON object in `text` if it has every key, else None and what was wrong."""
    body = text.strip()
    if body.startswith("```"):  # models fence JSON however they are asked
        body = body.strip("`").removeprefix("json").strip()
    try:
        answer = json.loads(body)
    except ValueError as exc:
        return None, f"it is not JSON ({exc.args[0] if exc.args else exc})"
    if not isinstance(answer, dict):
        return None, "it is not a JSON object"
    missing = [k for k in keys if k not in answer]
    if missing:
        return None, "missing field(s) " + ", ".join(repr(k) for k in missing)
    return {k: answer[k] for k in keys}, ""
