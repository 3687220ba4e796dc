"""`ws://HOST/ws/executions/`: live status of your runs (api.md).

Authenticate with a single-use `?ticket=` (POST /api/auth/ws-ticket/), an
`Authorization: Token ...` header, `?token=` (kept for older clients), or the Django session
(the live page); a missing, bad, expired or revoked one closes the socket with code 4401. Then send
`{"action": "subscribe", "execution_id" | "graph_id": ...}`, `unsubscribe`, `ping`.

Each subscription starts with a `snapshot` of the run as it stands, then every event of the
run's log in order (see events.py): a client never misses one, and the last is the run's
terminal `execution` event. The log is read once per run per server process, whatever the
number of sockets (feeds.py); each socket sends what its queue receives, the event's JSON
as Redis holds it. A run whose terminal event was lost (the process that ended it died
before publishing) is noticed there: after a few quiet seconds the run is read from the
database and, if it has ended, its terminal event is published.
"""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError

from accounts.services import token_lookup, ws_ticket_redeem
from graphs.models import Graph

from . import events, feeds
from .engine import TERMINAL
from .models import GraphExecution
from .selectors import execution_detail
from .streaming import texts_so_far

log = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_TOO_SLOW = 1013  # "try again later": the socket fell 10,000 events behind


class ExecutionStreamConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        self.user = await _authenticate(self.scope)
        self.following: set[str] = set()  # run ids
        self.graphs: set[str] = set()
        self.sender: asyncio.Task | None = None
        await self.accept()
        if self.user is None:
            await self.send_json(
                {
                    "type": "error",
                    "message": "authentication required: "
                    "send a ticket (POST /api/auth/ws-ticket/) as ?ticket=, or a token in "
                    "the Authorization header",
                }
            )
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.hub = feeds.hub(_publish_lost_end, _snapshot)
        self.subscriber = feeds.Subscriber(self.user.pk)
        self.sender = asyncio.create_task(self._send_forever())
        # The user's notifications from now on (every socket follows them).
        position = await self.hub.position(feeds.NOTIFICATIONS)
        await self.hub.follow(self.subscriber, feeds.NOTIFICATIONS, position)

    async def disconnect(self, code):
        if self.sender is not None:
            self.sender.cancel()
            self.hub.leave_all(self.subscriber)

    async def receive_json(self, content, **kwargs):
        action = content.get("action") if isinstance(content, dict) else None
        problem = _id_problem(content) if isinstance(content, dict) else None
        if problem:
            await self._error(problem[1], {}, field=problem[0])
            return
        try:
            await self._act(action, content)
        except Exception:  # a message must never cost the client its socket
            log.exception("live stream: a %r message failed", action)
            await self._error("the message could not be handled", content)

    async def _act(self, action, content) -> None:
        if action == "ping":
            await self.send_json({"type": "pong"})
        elif action == "subscribe" and "execution_id" in content:
            if await _owns_run(self.user, content["execution_id"]):
                await self._subscribe(str(content["execution_id"]))
            else:
                await self._error("execution not found", content, field="execution_id")
        elif action == "subscribe" and "graph_id" in content:
            graph_id = str(content["graph_id"])
            if not await _owns_graph(self.user, graph_id):
                await self._error("graph not found", content, field="graph_id")
                return
            # The graph's runs log first, then its active runs: a run that begins after
            # the listing is announced in the log.
            self.graphs.add(graph_id)
            feed = feeds.graph_feed(graph_id)
            position = await self.hub.position(feed)
            for run_id in await _active_runs(graph_id):
                await self._subscribe(run_id)
            await self.hub.follow(self.subscriber, feed, position)
            await self.send_json({"type": "subscribed", "graph_id": graph_id})
        elif action == "unsubscribe":
            if "execution_id" in content:
                self.following.discard(str(content["execution_id"]))
                self.hub.unfollow(self.subscriber, str(content["execution_id"]))
            if "graph_id" in content and str(content["graph_id"]) in self.graphs:
                graph_id = str(content["graph_id"])
                self.graphs.discard(graph_id)
                self.hub.unfollow(self.subscriber, feeds.graph_feed(graph_id))
            await self.send_json({"type": "unsubscribed", **_ids(content)})
        elif action == "subscribe":
            await self._error(
                "subscribe needs execution_id (a run) or graph_id (a graph's runs)", content,
                field="execution_id",
            )  # fmt: skip
        else:
            await self._error(
                f"unknown action {action!r}: send subscribe, unsubscribe or ping", content,
                field="action",
            )  # fmt: skip

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        try:
            content = json.loads(text_data or "")
        except ValueError:
            await self._error("messages must be JSON", {})
            return
        except RecursionError:
            await self._error("messages must not be nested so deeply", {})
            return
        await self.receive_json(content)

    # --- subscriptions ------------------------------------------------------------------

    async def _subscribe(self, run_id: str) -> None:
        # The log's position first, then the database: events after that position may
        # repeat what the snapshot shows, but none can be missed.
        self.following.add(run_id)
        snapshot = await self.hub.snapshot(run_id)  # shared with sockets subscribing now
        await self.send(text_data=snapshot.text)
        if snapshot.terminal:
            self.following.discard(run_id)
        elif run_id in self.following:  # not unsubscribed meanwhile
            await self.hub.follow(self.subscriber, run_id, snapshot.position)

    async def _send_forever(self) -> None:
        """Send what the feeds queue for this socket, in order."""
        while True:
            entry = await self.subscriber.queue.get()
            if self.subscriber.overflowed:
                await self._error("too far behind the run's events: subscribe again", {})
                await self.close(code=CLOSE_TOO_SLOW)
                return
            if entry.feed == feeds.NOTIFICATIONS:
                await self.send(text_data=entry.text)
                continue
            if entry.feed.startswith("graph:"):  # a run of a subscribed graph began or ended
                run_id = json.loads(entry.text)["execution_id"]
                if run_id not in self.following:
                    await self._subscribe(run_id)
                continue
            await self.send(text_data=entry.text)
            if entry.terminal:
                self.following.discard(entry.feed)
                self.hub.unfollow(self.subscriber, entry.feed)

    async def _error(self, message: str, content, field: str | None = None) -> None:
        """An error answer: what was wrong, the `field` of the message that was, its ids."""
        where = {"field": field} if field else {}
        await self.send_json({"type": "error", "message": message, **where, **_ids(content)})


def _id_problem(content: dict) -> tuple[str, str] | None:
    """(field, why) when an id of a message cannot name a run or a graph (they are short
    strings)."""
    for key in ("execution_id", "graph_id"):
        if key in content and not (isinstance(content[key], str) and len(content[key]) <= 64):
            return key, f"{key} must be a run or graph id (a string)"
    return None


def _ids(content) -> dict:
    """The ids of a message, echoed in its answer (checked by _id_problem first)."""
    if not isinstance(content, dict) or _id_problem(content):
        return {}
    return {k: content[k] for k in ("execution_id", "graph_id") if k in content}


@database_sync_to_async
def _publish_lost_end(run_id: str) -> None:
    status = GraphExecution.objects.filter(pk=run_id).values_list("status", flat=True).first()
    if status in TERMINAL:
        log.warning("run %s ended without its terminal event; publishing it", run_id)
        events.append_now(run_id, [events.run_event(run_id)])


@database_sync_to_async
def _authenticate(scope):
    """The user of a `?ticket=` (single-use), a token (`Authorization: Token` header, or
    `?token=` for older clients; access logs scrub it), or the Django session."""
    query = parse_qs(scope.get("query_string", b"").decode())
    ticket = (query.get("ticket") or [None])[0]
    if ticket is not None:
        return ws_ticket_redeem(ticket)
    key = (query.get("token") or [None])[0]
    if key is None:
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode()
        scheme, _, value = header.partition(" ")
        key = value.strip() if scheme.lower() == "token" else None
    if key:
        token = token_lookup(key)
        return token.user if token is not None else None
    user = scope.get("user")  # the Django session (the live page)
    return user if user is not None and not isinstance(user, AnonymousUser) else None


@database_sync_to_async
def _owns_run(user, run_id) -> bool:
    try:
        return GraphExecution.objects.filter(pk=run_id, user=user).exists()
    except (ValidationError, ValueError):
        return False


@database_sync_to_async
def _owns_graph(user, graph_id) -> bool:
    try:
        return Graph.objects.filter(pk=graph_id, owner=user).exists()
    except (ValidationError, ValueError):
        return False


@database_sync_to_async
def _active_runs(graph_id) -> list[str]:
    runs = GraphExecution.objects.filter(graph_id=graph_id).exclude(status__in=TERMINAL)
    return [str(pk) for pk in runs.values_list("pk", flat=True)]


# Snapshots run on the executor's threads side by side (each thread its own connection): on
# the one thread-sensitive thread, a hundred subscribers took their snapshots in turn and
# the last ones saw runs that had long ended.
def _snapshot_now(run_id) -> dict:
    user_id = GraphExecution.objects.filter(pk=run_id).values_list("user", flat=True).first()
    record = execution_detail(user=user_id, execution_id=run_id)
    record["outputs"], _ = events.truncate(record["outputs"])
    for ne in record["node_executions"]:
        ne["output_data"], _ = events.truncate(ne["output_data"])
    # A running model's text so far (its `delta` events' `offset` says what is new after).
    running = [ne["id"] for ne in record["node_executions"] if ne["status"] == "RUNNING"]
    for ne_id, text in texts_so_far(running).items():
        next(ne for ne in record["node_executions"] if ne["id"] == ne_id)["streamed"] = text
    record["terminal"] = record["status"] in TERMINAL
    return record


_snapshot = database_sync_to_async(_snapshot_now, thread_sensitive=False)
