"""Live events of a run, published after the database commit that made them true.

Each run has an event log in Redis: a stream `agentgraph:run:<id>:events`. One Lua script
appends a commit's events and numbers them from the run's counter in the same step, so the
stream's order is the `seq` order: gapless, whichever process published. WebSocket
consumers read the stream (executions/consumers.py); the run's terminal `execution` event
is always the last one appended (node events of the same commit go first, and a run that
ended changes no node any more).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis
from django.conf import settings
from django.db import transaction
from rest_framework.utils.encoders import JSONEncoder

from common import redis_clients

from .engine import TERMINAL
from .models import GraphExecution
from .selectors import execution_record
from .stats import NOTHING_RAN

log = logging.getLogger(__name__)

STREAM_MAXLEN = 10_000  # events kept per run for catching up (a snapshot covers the rest)
STREAM_TTL = 24 * 3600

# KEYS: seq counter, stream, terminal flag, a node lease (or ""), the graph's runs log (or
# ""). ARGV: ttl, maxlen, is_terminal, lease action ("" | "take" | "drop"), lease token, lease
# ttl ms, the graph announcement (JSON, or ""), then one JSON event per remaining argument.
# Each event gets the next seq and is appended in order. The lease rides along to save a
# round trip per node: taken with the node's RUNNING event, dropped (if still ours) with its
# completion. The announcement tells the graph's subscribers that a run began or ended
# (feeds.py), in the same call: no channel layer, no event loop in the worker.
_APPEND = """
if ARGV[4] == 'take' then
    redis.call('SET', KEYS[4], ARGV[5], 'PX', ARGV[6])
elseif ARGV[4] == 'drop' and redis.call('GET', KEYS[4]) == ARGV[5] then
    redis.call('DEL', KEYS[4])
end
if ARGV[7] ~= '' then
    redis.call('XADD', KEYS[5], 'MAXLEN', '~', 1000, '*', 'e', ARGV[7])
    redis.call('EXPIRE', KEYS[5], ARGV[1])
end
local last = 0
for i = 8, #ARGV do
    last = redis.call('INCR', KEYS[1])
    local event = cjson.decode(ARGV[i])
    event['seq'] = last
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'e', cjson.encode(event))
end
if #ARGV >= 8 then
    redis.call('EXPIRE', KEYS[1], ARGV[1])
    redis.call('EXPIRE', KEYS[2], ARGV[1])
    if ARGV[3] == '1' then redis.call('SET', KEYS[3], last, 'EX', ARGV[1]) end
end
return last
"""

_client: redis.Redis | None = None
_append_script = None


def client() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis_clients.client(settings.REDIS_URL, socket_timeout=5)
    return _client


def _script():
    """The append script, sent by its SHA once Redis knows it (EVALSHA, not EVAL)."""
    global _append_script
    if _append_script is None:
        _append_script = client().register_script(_APPEND)
    return _append_script


def stream_key(execution_id) -> str:
    return f"agentgraph:run:{execution_id}:events"


def seq_key(execution_id) -> str:
    return f"agentgraph:run:{execution_id}:seq"


def terminal_key(execution_id) -> str:
    return f"agentgraph:run:{execution_id}:ended"


def graph_runs_key(graph_id) -> str:
    """The log of a graph's runs beginning and ending, for its live subscribers."""
    return f"agentgraph:graph:{graph_id}:runs"


def emit(execution_id, events: list[dict[str, Any]], *, lease=None, announce: bool = False) -> None:
    """Publish `events` of one run once the current transaction commits (at once outside
    one). Never raises: a lost event is found again by subscribers (see consumers.py).
    `lease` (a leases.LeaseAction) is taken or dropped in the same Redis call; `announce`:
    the events include the run's first `execution` event, which tells its graph's
    subscribers it began."""
    if events or lease is not None:
        transaction.on_commit(
            lambda: append_now(execution_id, events, lease=lease, announce=announce)
        )


def emit_run(execution_id, *, announce: bool = False, nothing_ran: bool = False) -> None:
    """Publish the run's `execution` event, built from the committed row; `announce` tells
    its graph's subscribers the run began (its end is always told); `nothing_ran` spares the
    count of its node executions (a run being created or started)."""
    transaction.on_commit(
        lambda: append_now(
            execution_id, [run_event(execution_id, nothing_ran=nothing_ran)], announce=announce
        )
    )


def append_now(
    execution_id, events: list[dict[str, Any]], *, lease=None, announce: bool = False
) -> None:
    """Append `events` to the run's log now (emit() waits for the commit)."""
    terminal = any(e.get("type") == "execution" and e.get("terminal") for e in events)
    lease_args = lease.script_args() if lease is not None else ("", "", "", "")
    told = _announcement(events) if announce or terminal else None
    try:
        _script()(
            keys=[seq_key(execution_id), stream_key(execution_id), terminal_key(execution_id),
                  lease_args[0], graph_runs_key(told["graph_id"]) if told else ""],
            args=[STREAM_TTL, STREAM_MAXLEN, "1" if terminal else "0", *lease_args[1:],
                  json.dumps(told) if told else "",
                  *(json.dumps(e, cls=JSONEncoder) for e in events)],
        )  # fmt: skip
        if lease is not None:
            lease.done()
    except redis.RedisError:
        log.warning("could not publish %d event(s) of run %s", len(events), execution_id,
                    exc_info=True)  # fmt: skip
        if lease is not None:
            lease.failed()


def _announcement(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """What a graph's subscribers are told of a run event: the run's id (they subscribe)."""
    for event in events:
        if event.get("type") == "execution" and event.get("graph_id"):
            return {"graph_id": str(event["graph_id"]), "execution_id": str(event["id"])}
    return None


def node_event(
    execution_id, node_execution_id: int, node_id: str, status: str,
    outputs: dict[str, list[Any]] | None = None, error: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    event: dict[str, Any] = {
        "type": "node", "execution_id": str(execution_id), "node_id": node_id,
        "node_execution_id": node_execution_id, "status": status,
    }  # fmt: skip
    if outputs is not None:
        event["outputs"], truncated = truncate(outputs)
        if truncated:
            event["truncated"] = True
    if error is not None:
        event["error"] = error
    return event


def run_event(execution_id, *, nothing_ran: bool = False) -> dict[str, Any]:
    execution = GraphExecution.objects.select_related("graph_version").get(pk=execution_id)
    return run_event_of(execution, nothing_ran=nothing_ran)


def run_event_of(execution: GraphExecution, *, nothing_ran: bool = False) -> dict[str, Any]:
    """The `execution` event of this run as the object stands."""
    record = execution_record(execution, live=NOTHING_RAN if nothing_ran else None)
    outputs, truncated = truncate(record["outputs"])
    event = {"type": "execution", **record, "outputs": outputs}
    if truncated:
        event["truncated"] = True
    if execution.status in TERMINAL:
        event["terminal"] = True
    return event


def truncate(value: Any) -> tuple[Any, bool]:
    """Values past EVENTS_MAX_VALUE_BYTES (as JSON) are cut to a marked preview; the API keeps
    the whole value."""
    limit = settings.EVENTS_MAX_VALUE_BYTES
    text = json.dumps(value, default=str)
    if len(text) <= limit:
        return value, False
    return {"truncated": True, "size": len(text), "preview": text[:limit]}, True
