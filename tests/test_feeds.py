"""The live stream's per-process feeds (executions/feeds.py) against the real Redis: one
reader per run whatever the number of sockets, late joiners reading their gap, a socket too
far behind marked, a quiet run's lost end published once."""

import asyncio
import json
import uuid

import pytest

from executions import events, feeds

pytestmark = pytest.mark.integration


def append(run_id, *events_, terminal=False):
    batch = [{"type": "node", "execution_id": run_id, "n": n} for n in events_]
    if terminal:
        batch.append({"type": "execution", "id": run_id, "terminal": True})
    events.append_now(run_id, batch)


async def drain(subscriber, until_terminal=True, timeout=5.0):
    got = []
    while True:
        entry = await asyncio.wait_for(subscriber.queue.get(), timeout)
        got.append(json.loads(entry.text))
        if entry.terminal and until_terminal:
            return got


async def take(subscriber):
    return json.loads((await asyncio.wait_for(subscriber.queue.get(), 5)).text)


def seqs(got):
    return [e["seq"] for e in got]


def test_a_thousand_sockets_share_one_reader_and_each_gets_every_event_once():
    run_id = str(uuid.uuid4())
    append(run_id, 0)  # seq 1: before anyone subscribes

    async def main():
        hub = feeds.Hub(publish_lost_end=None)
        reads = 0
        xread = hub.redis.xread

        async def counting_xread(*args, **kwargs):
            nonlocal reads
            reads += 1
            return await xread(*args, **kwargs)

        hub.redis.xread = counting_xread
        position = (await hub.redis.xrevrange(events.stream_key(run_id), count=1))[0][0].decode()
        sockets = [feeds.Subscriber() for _ in range(1000)]
        for s in sockets:
            await hub.follow(s, run_id, position)
        assert len(hub.feeds) == 1
        for n in range(1, 5):
            await asyncio.to_thread(append, run_id, n)
        await asyncio.to_thread(append, run_id, 5, terminal=True)
        received = await asyncio.gather(*(drain(s) for s in sockets))
        await asyncio.sleep(0.05)
        assert run_id not in hub.feeds  # the feed ends with its run
        await hub.redis.aclose()
        return received, reads

    received, reads = asyncio.run(main())
    assert all(seqs(got) == [2, 3, 4, 5, 6, 7] for got in received)
    assert reads <= 7  # one read per batch of events, not one per socket


def test_a_socket_joining_behind_the_feed_reads_its_gap_then_follows():
    run_id = str(uuid.uuid4())

    async def main():
        hub = feeds.Hub(publish_lost_end=None)
        early, late = feeds.Subscriber(), feeds.Subscriber()
        await hub.follow(early, run_id, "0-0")
        await asyncio.to_thread(append, run_id, 1, 2, 3)
        got_early = [await take(early) for _ in range(3)]  # the feed has read all three
        await hub.follow(late, run_id, "0-0")  # its position is before the feed's
        await asyncio.to_thread(append, run_id, 4, terminal=True)
        got_late = await drain(late)
        got_early += await drain(early)
        await hub.redis.aclose()
        return got_early, got_late

    got_early, got_late = asyncio.run(main())
    assert seqs(got_early) == [1, 2, 3, 4, 5]
    assert seqs(got_late) == [1, 2, 3, 4, 5]


def test_entries_at_or_before_a_sockets_position_are_skipped():
    subscriber = feeds.Subscriber()
    subscriber.positions["r"] = feeds.entry_key("10-1")
    for entry_id in ("9-5", "10-1", "10-2", "10-2", "11-0"):
        subscriber.offer(feeds.Entry("r", entry_id, "{}", False))
    assert [subscriber.queue.get_nowait().entry_id for _ in range(2)] == ["10-2", "11-0"]
    assert subscriber.queue.empty()
    subscriber.offer(feeds.Entry("other run", "12-0", "{}", False))  # not followed
    assert subscriber.queue.empty()


def test_a_socket_too_far_behind_is_marked_and_gets_nothing_more():
    subscriber = feeds.Subscriber(max_queued=3)
    subscriber.positions["r"] = (0, 0)
    for n in range(1, 6):
        subscriber.offer(feeds.Entry("r", f"{n}-0", "{}", False))
    assert subscriber.overflowed and subscriber.queue.qsize() == 3
    assert not subscriber.positions  # it follows nothing: its consumer closes the socket


def test_a_quiet_run_without_its_terminal_event_has_it_published_once(monkeypatch):
    monkeypatch.setattr(feeds, "QUIET_SECONDS", 0.3)
    monkeypatch.setattr(feeds, "READ_BLOCK_MS", 100)
    run_id = str(uuid.uuid4())
    append(run_id, 1)
    published = []

    async def publish_lost_end(run):  # what the consumer's does, from the database
        published.append(run)
        await asyncio.to_thread(append, run, 2, terminal=True)

    async def main():
        hub = feeds.Hub(publish_lost_end=publish_lost_end)
        sockets = [feeds.Subscriber() for _ in range(3)]
        for s in sockets:
            await hub.follow(s, run_id, "0-0")
        received = await asyncio.gather(*(drain(s) for s in sockets))
        await hub.redis.aclose()
        return received

    received = asyncio.run(main())
    assert published == [run_id]  # once for the run, not once per socket
    assert all(seqs(got) == [1, 2, 3] for got in received)
