"""One reader per run per server process, however many sockets watch the run.

A socket that subscribes to a run joins the run's `Feed` in its process: one task that
reads the run's event log (a Redis stream, see events.py) with a blocking XREAD and hands
each entry, as the JSON text Redis holds, to every joined socket's queue. A thousand
sockets on one run cost one Redis read and one decode per event, not a thousand.

A socket joins at the log position it read before its snapshot. The feed may be ahead of
it (it has been reading for others): the socket then reads the gap itself (one XRANGE)
before the entries the feed hands it; entries at or before a socket's own position are
skipped, so it gets every event once, in order.

A graph has a feed too: its log of runs that began or ended (events.graph_runs_key), which
graph subscriptions follow to subscribe to each new run. And every socket follows the one
feed of all users' notifications (notifications.services.STREAM_KEY), which hands each
entry only to the sockets of the user it is for.

A feed whose run has been quiet for QUIET_SECONDS checks that the run has not ended
without its terminal event (its process died before publishing it); if it has, the event
is published from the database, and the feed reads it like any other.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from rest_framework.utils.encoders import JSONEncoder

from common import redis_clients
from notifications.services import STREAM_KEY as NOTIFICATIONS_KEY

from . import events

log = logging.getLogger(__name__)

QUIET_SECONDS = 5.0
# A snapshot taken for one socket is sent to others subscribing to the run within this
# long (with its log position: they get every event after it, so none is missed); a
# thousand sockets subscribing at once cost one database read per process, not a thousand.
SNAPSHOT_REUSE_SECONDS = 1.0
READ_BLOCK_MS = 1_000
READ_COUNT = 1_000


def graph_feed(graph_id: str) -> str:
    """The feed name of a graph's runs (a run's feed is named by its id)."""
    return f"graph:{graph_id}"


# The feed of every user's notifications (entries carry their user).
NOTIFICATIONS = "notifications"


def _stream_of(feed: str) -> str:
    if feed == NOTIFICATIONS:
        return NOTIFICATIONS_KEY
    if feed.startswith("graph:"):
        return events.graph_runs_key(feed.removeprefix("graph:"))
    return events.stream_key(feed)


@dataclass(frozen=True)
class Entry:
    """One event of a run's log (or one run of a graph's), as its subscribers receive it."""

    feed: str  # a run id, graph_feed(graph id), or NOTIFICATIONS
    entry_id: str
    text: str  # the event's JSON, sent to sockets as it is
    terminal: bool
    user: int | None = None  # the user a notification is for


def entry_key(entry_id: str) -> tuple[int, int]:
    """Stream entry ids ("<ms>-<n>") in their order."""
    ms, _, n = entry_id.partition("-")
    return int(ms), int(n or 0)


def parse(feed: str, entry_id: bytes | str, fields: dict) -> Entry:
    text = fields[b"e"].decode()
    event = json.loads(text)
    terminal = event.get("type") == "execution" and bool(event.get("terminal"))
    user = int(fields[b"u"]) if b"u" in fields else None
    entry_id = entry_id if isinstance(entry_id, str) else entry_id.decode()
    return Entry(feed, entry_id, text, terminal, user)


@dataclass(frozen=True)
class Snapshot:
    """A run as it stood, and the log position it stood at (events after it may repeat
    what it shows, but none is missing)."""

    position: str
    text: str  # the `snapshot` message's JSON
    terminal: bool


class Subscriber:
    """One socket's side: its queue of entries, and its position in each run it follows."""

    def __init__(self, user_id: int | None = None, max_queued: int = 10_000):
        self.user_id = user_id
        self.queue: asyncio.Queue[Entry | None] = asyncio.Queue(max_queued)
        self.positions: dict[str, tuple[int, int]] = {}
        self.overflowed = False

    def offer(self, entry: Entry) -> None:
        """Queue an entry this socket has not had yet (never blocks the feed: a socket that
        falls this far behind is marked, and its consumer closes it)."""
        if entry.user is not None and entry.user != self.user_id:
            return  # another user's notification
        position = self.positions.get(entry.feed)
        if position is None or entry_key(entry.entry_id) <= position:
            return
        self.positions[entry.feed] = entry_key(entry.entry_id)
        try:
            self.queue.put_nowait(entry)
        except asyncio.QueueFull:
            self.overflowed = True  # its consumer closes the socket; the client reconnects
            self.positions.clear()


class Feed:
    """The one reader of a run's (or a graph's) log in this process."""

    def __init__(self, hub: Hub, name: str, position: str):
        self.hub = hub
        self.name = name
        self.key = _stream_of(name)
        self.is_run = not name.startswith("graph:") and name != NOTIFICATIONS
        # The notifications feed hands an entry to the sockets of its user only.
        self.by_user: dict[int | None, set[Subscriber]] = {}
        self.position = position
        self.subscribers: set[Subscriber] = set()
        self.joining = 0  # sockets reading their gap: the feed waits for them
        self.last_entry_at = time.monotonic()
        self.task = asyncio.create_task(self._read_forever(), name=f"feed {name}")

    async def _read_forever(self) -> None:
        while self.subscribers or self.joining:
            try:
                replies: Any = await self.hub.redis.xread(
                    {self.key: self.position}, block=READ_BLOCK_MS, count=READ_COUNT
                )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("live feed %s: read failed; retrying", self.name, exc_info=True)
                await asyncio.sleep(1)
                continue
            ended = False
            for _, entries in replies or []:
                for entry_id, fields in entries:
                    entry = parse(self.name, entry_id, fields)
                    self.position = entry.entry_id
                    targets = (
                        self.subscribers if entry.user is None else self.by_user.get(entry.user, ())
                    )
                    for subscriber in list(targets):
                        subscriber.offer(entry)
                    ended = ended or entry.terminal
            if replies:
                self.last_entry_at = time.monotonic()
            elif self.is_run and time.monotonic() - self.last_entry_at > QUIET_SECONDS:
                self.last_entry_at = time.monotonic()
                await self.hub.check_quiet(self.name)
            if ended:
                break
        if self.hub.feeds.get(self.name) is self:
            del self.hub.feeds[self.name]

    async def join(self, subscriber: Subscriber, position: str) -> None:
        """Follow the log from `position` (an entry id; "0-0" for its start)."""
        subscriber.positions[self.name] = entry_key(position)
        self.joining += 1
        try:
            # The feed may be ahead: read the gap, until no await lies between catching up
            # and joining (the feed hands on only what it reads after the join).
            while subscriber.positions.get(self.name, (0, 0)) < entry_key(self.position):
                target = self.position
                gap: Any = await self.hub.redis.xrange(self.key, min=f"({position}", max=target)
                for entry_id, fields in gap:
                    subscriber.offer(parse(self.name, entry_id, fields))
                if self.name not in subscriber.positions:
                    return  # it left (or overflowed) meanwhile
                position = target
                subscriber.positions[self.name] = max(
                    subscriber.positions[self.name], entry_key(target)
                )
            self.subscribers.add(subscriber)
            if self.name == NOTIFICATIONS:
                self.by_user.setdefault(subscriber.user_id, set()).add(subscriber)
        finally:
            self.joining -= 1

    def leave(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)
        same_user = self.by_user.get(subscriber.user_id)
        if same_user is not None:
            same_user.discard(subscriber)
            if not same_user:
                del self.by_user[subscriber.user_id]
        subscriber.positions.pop(self.name, None)


class Hub:
    """The feeds of one event loop (one per server process), and their Redis client."""

    def __init__(self, publish_lost_end: Callable, read_snapshot: Callable | None = None):
        # Each followed run's reader holds a connection while its XREAD blocks; snapshots
        # and gap reads take one briefly.
        self.redis = redis_clients.async_bounded_client(
            settings.REDIS_URL, settings.LIVE_REDIS_CONNECTIONS, socket_timeout=30
        )
        self.feeds: dict[str, Feed] = {}
        self.publish_lost_end = publish_lost_end
        self.read_snapshot = read_snapshot  # async (run id) -> the run's record
        self.snapshots: dict[str, tuple[float, asyncio.Future[Snapshot]]] = {}

    async def snapshot(self, run_id: str) -> Snapshot:
        """The run's snapshot: one taken in the last SNAPSHOT_REUSE_SECONDS (or being
        taken), else a new one."""
        now = time.monotonic()
        for stale in [
            r for r, (at, _) in self.snapshots.items() if now - at > SNAPSHOT_REUSE_SECONDS
        ]:
            del self.snapshots[stale]
        if run_id not in self.snapshots:
            self.snapshots[run_id] = (now, asyncio.ensure_future(self._take_snapshot(run_id)))
        future = self.snapshots[run_id][1]
        try:
            return await asyncio.shield(future)
        except Exception:
            if self.snapshots.get(run_id, (None, None))[1] is future:
                del self.snapshots[run_id]  # the next subscriber tries again
            raise

    async def _take_snapshot(self, run_id: str) -> Snapshot:
        # The log's position first, then the database.
        last: Any = await self.redis.xrevrange(events.stream_key(run_id), count=1)
        position = last[0][0].decode() if last else "0-0"
        seq = json.loads(last[0][1][b"e"])["seq"] if last else 0
        assert self.read_snapshot is not None
        record = await self.read_snapshot(run_id)
        text = json.dumps({"type": "snapshot", "seq": seq, **record}, cls=JSONEncoder)
        return Snapshot(position, text, bool(record.get("terminal")))

    async def position(self, feed: str) -> str:
        """The id of the log's last entry ("0-0" if none): where a subscription starts."""
        last: Any = await self.redis.xrevrange(_stream_of(feed), count=1)
        return last[0][0].decode() if last else "0-0"

    async def follow(self, subscriber: Subscriber, feed_name: str, position: str) -> None:
        feed = self.feeds.get(feed_name)
        if feed is None or feed.task.done():
            feed = self.feeds[feed_name] = Feed(self, feed_name, position)
        await feed.join(subscriber, position)

    def unfollow(self, subscriber: Subscriber, feed_name: str) -> None:
        feed = self.feeds.get(feed_name)
        if feed is not None:
            feed.leave(subscriber)
        else:
            subscriber.positions.pop(feed_name, None)

    def leave_all(self, subscriber: Subscriber) -> None:
        for feed_name in list(subscriber.positions):
            self.unfollow(subscriber, feed_name)

    async def check_quiet(self, run_id: str) -> None:
        if await self.redis.exists(events.terminal_key(run_id)):
            return  # its terminal event is in the log: the feed will read it
        await self.publish_lost_end(run_id)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def hub(publish_lost_end: Callable, read_snapshot: Callable) -> Hub:
    """This event loop's hub (created on first use)."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        found = _hubs[loop] = Hub(publish_lost_end, read_snapshot)
    return found
