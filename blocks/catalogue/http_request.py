"""Real HTTP through httpx, refusing addresses inside the service's own network."""

import ipaddress
import json
import socket
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import httpx
from django.conf import settings

from blocks.base import Block, BlockError, BlockSchema, Field, TransientBlockError

MAX_REDIRECTS = 5


class HttpRequestBlock(Block):
    name = "http_request"
    description = (
        "Sends an HTTP request; 2xx on `response`, 4xx on `client_error`, 5xx on `server_error`."
    )
    category = "io"
    # Paid: 2 per request, plus 1 per MiB of response.
    cost = 2
    cost_per_mib = 1.0
    # Connection errors, timeouts and 5xx are retried (with backoff) this many times; the
    # last attempt's 5xx goes to `server_error`.
    max_retries = 3

    class Input(BlockSchema):
        url: str = Field(min_length=1, max_length=8192, description="http(s) URL")
        method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = "GET"
        headers: dict[str, str] = Field(default_factory=dict)
        body: Any = Field(default=None, description="Sent as JSON when json_format, else as text")
        json_format: bool = Field(default=True, description="Send and parse bodies as JSON")
        timeout: float = Field(default=30.0, gt=0, description="Seconds")

    class Output(BlockSchema):
        response: Any
        client_error: Any
        server_error: Any

    def run(self, data, ctx):
        timeout = min(data.timeout, settings.HTTP_BLOCK_MAX_TIMEOUT)
        content: dict[str, Any] = {}
        if data.body is not None:
            if data.json_format:
                content["json"] = data.body
            else:
                content["content"] = (
                    data.body if isinstance(data.body, str) else json.dumps(data.body)
                )
        url, method, headers = data.url, data.method, dict(data.headers)
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            for _ in range(MAX_REDIRECTS + 1):
                check_destination(url)
                try:
                    with client.stream(method, url, headers=headers, **content) as resp:
                        if resp.is_redirect and "location" in resp.headers:
                            target = urljoin(url, resp.headers["location"])
                            if _origin(target) != _origin(url):
                                headers = _without_secrets(headers)
                            url = target
                            if resp.status_code in (301, 302, 303):
                                method, content = "GET", {}
                            continue
                        body = _read_limited(resp)
                        status = resp.status_code
                        is_json = data.json_format
                        break
                except httpx.TransportError as exc:  # connection refused/reset, timeouts
                    raise TransientBlockError(f"request to {url} failed: {exc!r}") from exc
                except httpx.HTTPError as exc:
                    raise BlockError(f"request to {url} failed: {exc}") from exc
            else:
                raise BlockError(f"more than {MAX_REDIRECTS} redirects")
        value = _decode(body, is_json)
        if 200 <= status < 300:
            yield "response", value
        elif 400 <= status < 500:
            yield "client_error", value
        elif status >= 500:
            if ctx.retries_left > 0:
                raise TransientBlockError(f"{url} answered HTTP {status}")
            yield "server_error", value
        else:
            raise BlockError(f"unexpected HTTP status {status}")


# Headers that carry credentials: never sent on to another origin by a redirect.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port


def _without_secrets(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in SECRET_HEADERS}


def _read_limited(resp: httpx.Response) -> bytes:
    limit = settings.HTTP_BLOCK_MAX_RESPONSE_BYTES
    chunks, size = [], 0
    for chunk in resp.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise BlockError(f"response larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(body: bytes, as_json: bool) -> Any:
    text = body.decode("utf-8", errors="replace")
    if as_json and text.strip():
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def check_destination(url: str) -> None:
    """Refuse URLs whose host resolves to a loopback, private, link-local or otherwise
    internal address, unless settings allow it. Every redirect hop is checked again."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BlockError(f"only http and https URLs with a host are allowed, not {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise BlockError(f"cannot resolve {parts.hostname}: {exc}") from exc
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        reason = _refusal(address)
        if reason:
            raise BlockError(f"requests to {reason} addresses are not allowed ({address})")


def _refusal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_loopback:
        return None if settings.HTTP_BLOCK_ALLOW_LOOPBACK else "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast or address.is_unspecified or address.is_reserved:
        return "reserved"
    if address.is_private:
        return None if settings.HTTP_BLOCK_ALLOW_PRIVATE else "private"
    return None
