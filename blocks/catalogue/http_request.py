"""Real HTTP through the outbound guard (outbound/): only public addresses, checked where
each connection is made, every redirect hop again."""

import json
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import httpx2
from django.conf import settings

import outbound
from blocks.base import Block, BlockError, BlockSchema, Field, TransientBlockError
from blocks.files import files_of

MAX_REDIRECTS = 5


class HttpRequestBlock(Block):
    name = "http_request"
    simulated_in_dry_run = True
    description = (
        "Sends an HTTP request; 2xx on `response`, 4xx on `client_error`, 5xx on `server_error`."
    )
    category = "io"
    # Paid: 2 per request, plus 1 per MiB of response.
    cost = 2
    cost_per_mib = 1.0
    # Connection errors, timeouts and 5xx are retried (with backoff) this many times; the
    # last attempt's 5xx goes to `server_error`. A request that may have reached the server
    # is retried only if its method is idempotent, or the node opts in (`retry_unsafe`): a
    # POST to a payment API must not be sent twice. A refused connection sent nothing.
    max_retries = 3

    @classmethod
    def is_sensitive(cls, input_data):
        """Anything but reading (GET, HEAD, OPTIONS) acts on the far side: sensitive."""
        return str(input_data.get("method") or "GET").upper() not in ("GET", "HEAD", "OPTIONS")

    class Input(BlockSchema):
        url: str = Field(min_length=1, max_length=8192, description="http(s) URL")
        method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = "GET"
        headers: dict[str, str] = Field(default_factory=dict)
        body: Any = Field(default=None, description="Sent as JSON when json_format, else as text")
        files: dict[str, dict] = Field(
            default_factory=dict,
            description='Send multipart/form-data: {field: {"$file": id}}, `body` (a dict) as '
            "the other fields",
        )
        json_format: bool = Field(default=True, description="Send and parse bodies as JSON")
        timeout: float = Field(default=30.0, gt=0, description="Seconds")
        retry_unsafe: bool = Field(
            default=False,
            description="Retry POST and PATCH after a timeout or 5xx too (they may repeat)",
        )

    class Output(BlockSchema):
        response: Any
        client_error: Any
        server_error: Any

    def run(self, data, ctx):
        timeout = min(data.timeout, settings.HTTP_BLOCK_MAX_TIMEOUT)
        content: dict[str, Any] = {}
        if data.files:
            content = _multipart(data.files, data.body, ctx)
        elif data.body is not None:
            if data.json_format:
                content["json"] = data.body
            else:
                content["content"] = (
                    data.body if isinstance(data.body, str) else json.dumps(data.body)
                )
        url, method, headers = data.url, data.method, dict(data.headers)
        retryable = data.retry_unsafe or method in IDEMPOTENT_METHODS
        limit = settings.HTTP_BLOCK_MAX_RESPONSE_BYTES
        with outbound.client(timeout=timeout, max_response_bytes=limit) as client:
            for _ in range(MAX_REDIRECTS + 1):
                try:
                    outbound.check_url(url)
                    with client.stream(method, url, headers=headers, **content) as resp:
                        if resp.is_redirect and "location" in resp.headers:
                            target = urljoin(url, resp.headers["location"])
                            if _origin(target) != _origin(url):
                                headers = without_secrets(headers, ctx.secrets)
                            url = target
                            if resp.status_code in (301, 302, 303):
                                method, content = "GET", {}
                            continue
                        body = resp.read()
                        status = resp.status_code
                        ctx.log(f"{method} {url} answered {status} ({len(body)} bytes)")
                        break
                except outbound.DestinationRefused as exc:
                    raise BlockError(str(exc)) from exc
                except outbound.ResponseTooLarge as exc:
                    raise BlockError(str(exc)) from exc
                except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:  # nothing was sent
                    raise TransientBlockError(f"request to {url} failed: {exc!r}") from exc
                except httpx2.TransportError as exc:  # reset, timed out: it may have arrived
                    error = TransientBlockError if retryable else BlockError
                    raise error(f"request to {url} failed: {exc!r}") from exc
                except httpx2.HTTPError as exc:
                    raise BlockError(f"request to {url} failed: {exc}") from exc
            else:
                raise BlockError(f"more than {MAX_REDIRECTS} redirects")
        value = _decode(body, data.json_format)
        if 200 <= status < 300:
            yield "response", value
        elif 400 <= status < 500:
            yield "client_error", value
        elif status >= 500:
            if ctx.retries_left > 0 and retryable:
                raise TransientBlockError(f"{url} answered HTTP {status}")
            yield "server_error", value
        else:
            raise BlockError(f"unexpected HTTP status {status}")


def _multipart(files: dict[str, dict], body: Any, ctx) -> dict[str, Any]:
    """httpx2's multipart arguments: each file read from the run owner's store."""
    if body is not None and not isinstance(body, dict):
        raise BlockError("with `files`, `body` must be a dict of form fields")
    parts = {}
    for field, reference in files.items():
        content = files_of(ctx).read(reference)
        parts[field] = (content.name, content.data, content.content_type)
    fields = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (body or {}).items()}
    return {"files": parts, "data": fields}


IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})

# Headers that carry credentials by their name; never sent on to another origin.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port


def without_secrets(headers: dict[str, str], secrets: tuple[str, ...]) -> dict[str, str]:
    """The headers that may follow a redirect to another origin: none named for credentials,
    and none whose value holds a secret the node was given (whatever the header's name)."""
    return {
        name: value
        for name, value in headers.items()
        if name.lower() not in SECRET_HEADERS
        and not any(secret and secret in value for secret in secrets)
    }


def _decode(body: bytes, as_json: bool) -> Any:
    text = body.decode("utf-8", errors="replace")
    if as_json and text.strip():
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text
