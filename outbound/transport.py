"""The one way out: an httpx2 client whose every connection is vetted where it is made.

httpcore2 opens each TCP connection through a network backend. Ours resolves the host once,
checks every address against the policy, and connects to the vetted address itself, so a
name cannot answer a public address to the check and an internal one to the connection (DNS
rebinding). TLS still verifies the certificate for the host name (httpcore2 sends the
origin's name as SNI), and the Host header is the URL's. Every redirect hop opens its own
connection, so it is vetted the same way; clients here do not follow redirects on their own.

Responses are size-capped while they stream in, whoever reads them (our blocks, or the
`openai` and `anthropic` libraries, which read a body whole). httpx2 is the client the
provider libraries are built on, so one guard serves every outbound request."""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterable, Iterator

import httpcore2
import httpx2
from django.conf import settings
from httpcore2._backends.sync import SyncStream

from common import tracing

from .policy import Address, DestinationRefused, Policy


class ResponseTooLarge(Exception):
    def __init__(self, limit: int):
        super().__init__(f"response larger than {limit} bytes")
        self.limit = limit


# The two ways the guard stops a request; each names what it stopped in its message.
Refused = (DestinationRefused, ResponseTooLarge)


def refusal_of(exc: BaseException) -> Exception | None:
    """The guard's refusal behind `exc`, if any: client libraries wrap what the transport
    raised (openai's APIConnectionError), and a refusal must not pass for a network error
    worth retrying."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return None
        if isinstance(seen, Refused):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def resolve(host: str, port: int) -> list[Address]:
    """Every address `host` has (an IP literal is its own address)."""
    try:
        return [ipaddress.ip_address(host.strip("[]").split("%")[0])]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DestinationRefused(f"cannot resolve {host}: {exc}") from exc
    addresses: list[Address] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


class GuardedBackend(httpcore2.NetworkBackend):
    """Connects only to addresses the policy allows, and only to what it checked."""

    def __init__(self, policy: Policy):
        self.policy = policy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable | None = None,
    ) -> httpcore2.NetworkStream:
        addresses = resolve(host, port)
        self.policy.check(host, addresses)
        failure: OSError | None = None
        for address in addresses:  # in the resolver's order, as socket.create_connection does
            try:
                sock = _connect(address, port, timeout, local_address)
            except OSError as exc:
                failure = exc
                continue
            for option in socket_options or ():
                sock.setsockopt(*option)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return SyncStream(sock)
        if isinstance(failure, TimeoutError):
            raise httpcore2.ConnectTimeout(f"{failure} ({host})") from failure
        raise httpcore2.ConnectError(f"{failure} ({host})") from failure

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def connect(
    host: str, port: int, *, timeout: float | None, also_allow_hosts: tuple[str, ...] = ()
) -> socket.socket:
    """A guarded TCP connection for protocols other than HTTP (send_email's SMTP): to an
    address the policy allows, exactly the one checked. `also_allow_hosts` admits an
    operator's configured server whatever its address (never a user's)."""
    policy = policy_from_settings().with_hosts(*also_allow_hosts)
    addresses = resolve(host, port)
    policy.check(host, addresses)
    failure: OSError = OSError(f"cannot connect to {host}:{port}")
    for address in addresses:
        try:
            return _connect(address, port, timeout, None)
        except OSError as exc:
            failure = exc
    raise failure


def _connect(address: Address, port: int, timeout, local_address) -> socket.socket:
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        if local_address:
            sock.bind((local_address, 0))
        # A numeric address: the socket connects to exactly it, no name is looked up again.
        sock.connect((str(address), port))
    except OSError:
        sock.close()
        raise
    return sock


class _CappedStream(httpx2.SyncByteStream):
    def __init__(self, inner: httpx2.SyncByteStream, limit: int):
        self.inner, self.limit = inner, limit

    def __iter__(self) -> Iterator[bytes]:
        size = 0
        for chunk in self.inner:
            size += len(chunk)
            if size > self.limit:
                raise ResponseTooLarge(self.limit)
            yield chunk

    def close(self) -> None:
        self.inner.close()


class GuardedTransport(httpx2.HTTPTransport):
    """httpx2's transport with the guarded backend and a response size cap. Environment
    proxies are ignored: a proxy would make the connection, unchecked."""

    def __init__(self, policy: Policy, max_response_bytes: int):
        super().__init__(trust_env=False)
        # The pool is the library's own, made with our backend; nothing is connected yet.
        limits = httpx2.Limits()
        self._pool = httpcore2.ConnectionPool(
            ssl_context=self._pool._ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy),
        )
        self.max_response_bytes = max_response_bytes

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        if not tracing.ENABLED:
            return self._checked_response(super().handle_request(request))
        # A client span per request, its context sent on as `traceparent`. Only the
        # destination is recorded: a path or query may carry a user's secret.
        with tracing.span(
            request.method,
            {
                "http.request.method": request.method,
                "server.address": request.url.host,
                "server.port": request.url.port,
                "url.scheme": request.url.scheme,
            },
            kind=tracing.CLIENT,
        ) as span:
            headers: dict[str, str] = {}
            tracing.inject(headers)
            request.headers.update(headers)
            response = super().handle_request(request)
            if span is not None:
                span.set_attribute("http.response.status_code", response.status_code)
                if response.status_code >= 500:
                    tracing.failed(span, f"HTTP {response.status_code}")
            return self._checked_response(response)

    def _checked_response(self, response: httpx2.Response) -> httpx2.Response:
        declared = response.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > self.max_response_bytes:
            response.close()
            raise ResponseTooLarge(self.max_response_bytes)
        assert isinstance(response.stream, httpx2.SyncByteStream)
        response.stream = _CappedStream(response.stream, self.max_response_bytes)
        return response


def client(
    *,
    timeout: float,
    max_response_bytes: int | None = None,
    also_allow_hosts: tuple[str, ...] = (),
    headers: dict[str, str] | None = None,
) -> httpx2.Client:
    """A client for one outbound job: guarded connections, no redirects followed (callers
    that follow them do it hop by hop), no environment proxies. `also_allow_hosts` admits an
    operator's configured endpoint whatever its address (never a user's URL)."""
    policy = policy_from_settings().with_hosts(*also_allow_hosts)
    limit = max_response_bytes or settings.OUTBOUND_MAX_RESPONSE_BYTES
    return httpx2.Client(
        transport=GuardedTransport(policy, limit),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        headers=headers,
    )


def policy_from_settings() -> Policy:
    """The operator's policy (OUTBOUND_* settings)."""
    return Policy(
        allow_loopback=settings.OUTBOUND_ALLOW_LOOPBACK,
        allow_private=settings.OUTBOUND_ALLOW_PRIVATE,
        networks=tuple(
            ipaddress.ip_network(n, strict=False) for n in settings.OUTBOUND_ALLOWED_NETWORKS
        ),
        hosts=frozenset(h.lower().rstrip(".") for h in settings.OUTBOUND_ALLOWED_HOSTS),
    )
