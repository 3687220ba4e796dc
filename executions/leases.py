"""A lease per running node, in Redis: who runs it, alive as long as they renew it.

Compare-and-set claims stop two deliveries from starting one node, but a *redelivered*
message (the broker thinks its worker is gone: the worker died, or its connection dropped)
must tell a dead owner from a live one that lost its connection. The owner holds a lease
(SET NX with a TTL, renewed by one thread per process while the node runs, released only by
its owner's token); a redelivered task takes the node over only once the lease has lapsed,
or at once when its owner is a dead process on this same host.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid

import redis
from django.conf import settings

from common import redis_clients

log = logging.getLogger(__name__)

_COMPARE_AND_DELETE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)
_COMPARE_AND_EXTEND = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
)

_client: redis.Redis | None = None
_client_pid: int | None = None


def _redis() -> redis.Redis:
    global _client, _client_pid
    if _client is None or _client_pid != os.getpid():  # one client per (forked) process
        _client = redis_clients.client(settings.REDIS_URL, socket_timeout=5)
        _client_pid = os.getpid()
    return _client


class NodeLease:
    def __init__(self, node_execution_id: int):
        self.key = f"agentgraph:node-lease:{node_execution_id}"
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        self.ttl_ms = settings.ENGINE_NODE_LEASE_SECONDS * 1000
        self.held = False
        self.released = False

    def acquire(self) -> bool:
        """Take the lease if it is free, or held by a dead process of this host."""
        client = _redis()
        if client.set(self.key, self.token, nx=True, px=self.ttl_ms):
            self.held = True
            _renewer.add(self)
            return True
        holder = client.get(self.key)
        holder_text = holder.decode() if isinstance(holder, bytes) else holder
        if holder is not None and _dead_local_owner(str(holder_text)):
            client.eval(_COMPARE_AND_DELETE, 1, self.key, holder)
            if client.set(self.key, self.token, nx=True, px=self.ttl_ms):
                self.held = True
                _renewer.add(self)
                return True
        return False

    def taken_with_event(self) -> LeaseAction:
        """Take the lease in the Redis call that publishes the node's RUNNING event (after a
        claim from QUEUED made this task the node's owner)."""
        return LeaseAction(self, "take")

    def dropped_with_event(self) -> LeaseAction:
        """Release the lease in the Redis call that publishes the node's completion."""
        return LeaseAction(self, "drop")

    def renew(self) -> bool:
        return bool(_redis().eval(_COMPARE_AND_EXTEND, 1, self.key, self.token, self.ttl_ms))

    def release(self) -> None:
        if not self.held or self.released:
            return
        _renewer.discard(self)
        self.released = True
        try:
            _redis().eval(_COMPARE_AND_DELETE, 1, self.key, self.token)
        except redis.RedisError:  # it lapses on its own
            log.warning("could not release %s", self.key, exc_info=True)


class LeaseAction:
    """A lease taken or dropped as part of an event publication (events.append_now)."""

    def __init__(self, lease: NodeLease, action: str):
        self.lease, self.action = lease, action

    def script_args(self) -> tuple[str, str, str, str]:
        return (self.lease.key, self.action, self.lease.token, str(self.lease.ttl_ms))

    def done(self) -> None:
        if self.action == "take":
            self.lease.held = True
            _renewer.add(self.lease)
        else:
            _renewer.discard(self.lease)
            self.lease.released = True

    def failed(self) -> None:
        """Redis did not answer: a taken lease is not held (nothing renews it); a lease to
        drop stays for release() to try again."""


def _dead_local_owner(holder: str) -> bool:
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class _Renewer:
    """One thread per process renews every lease this process holds, every TTL/3."""

    def __init__(self):
        self._leases: set[NodeLease] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    def add(self, lease: NodeLease) -> None:
        with self._lock:
            self._leases.add(lease)
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="node-leases", daemon=True)
                self._thread.start()

    def discard(self, lease: NodeLease) -> None:
        with self._lock:
            self._leases.discard(lease)

    def _run(self) -> None:
        interval = settings.ENGINE_NODE_LEASE_SECONDS / 3
        while True:
            threading.Event().wait(interval)
            with self._lock:
                leases = list(self._leases)
            for lease in leases:
                try:
                    if not lease.renew():
                        log.warning("lease %s was lost while its node ran", lease.key)
                except redis.RedisError:
                    log.warning("could not renew %s", lease.key, exc_info=True)


_renewer = _Renewer()


def lease_exists(key: str) -> bool:
    return bool(_redis().exists(key))
