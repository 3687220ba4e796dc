"""The outbox: what a transaction decides to publish is written in that same transaction,
so a broker that is down when it commits (or a process that dies right after) delays the
message by seconds instead of losing it to the watchdog's stall threshold.

`record(kind, body, send)` inside a transaction inserts one row and, once the transaction
has committed, sends the message and deletes the row. A send that fails (kombu gave up
retrying) leaves the row. Outside a transaction there is nothing to be atomic with: the
message is sent at once and written only if that fails.

`relay(send)` sends the rows older than OUTBOX_RELAY_AFTER seconds, oldest first, each
row locked (SKIP LOCKED) so that two relays never send the same one. A thread in every
worker's main process calls it every OUTBOX_RELAY_INTERVAL seconds (RelayThread, started
from config/celery.py); the watchdog calls it too.

A message may go out twice: a send that was slower than OUTBOX_RELAY_AFTER and the relay,
or a process that died between its send and the delete. Every task this project publishes
is safe to receive twice (node claims are compare-and-set, joins check `propagated`).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models.functions import Now

from common import tracing

from .models import OutboxMessage

log = logging.getLogger(__name__)

Send = Callable[[str, dict[str, Any]], None]


def record(
    kind: str, body: dict[str, Any], send: Send, *, long_send: bool = False,
    row_id: int | None = None,
) -> None:  # fmt: skip
    """Publish `body` as a `kind` message once the current transaction commits; written
    first, so that it survives a broker outage or this process dying after the commit.
    `long_send`: the message is many tasks, whose sending may outlast OUTBOX_RELAY_AFTER; it
    is sent holding its row's lock, so that the relay does not send it a second time.
    `row_id`: the transaction wrote the message's row itself (a chain hop's statement does,
    saving a round trip); the same body, as the relay would read it back.
    With tracing on, the body carries the trace it was decided in (`trace`)."""
    if tracing.ENABLED:
        body = {**body, "trace": tracing.current_traceparent()}
    if row_id is not None:
        written: int = row_id
        transaction.on_commit(lambda: _send_and_clear(written, kind, body, send))
        return
    if not connection.in_atomic_block:
        try:
            send(kind, body)
        except Exception:
            log.warning("broker refused a %s message; the outbox relay sends it", kind)
            OutboxMessage.objects.create(kind=kind, body=body)
        return
    row_id = _insert(kind, body)
    sender = _send_locked if long_send else _send_and_clear
    transaction.on_commit(lambda: sender(row_id, kind, body, send))


# Raw statements: on every node's path, where the ORM's create() and delete() cost three
# times as much as the statements themselves.
_INSERT_SQL = "INSERT INTO executions_outboxmessage (kind, body) VALUES (%s, %s) RETURNING id"
_DELETE_SQL = "DELETE FROM executions_outboxmessage WHERE id = %s"


def _insert(kind: str, body: dict[str, Any]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_SQL, [kind, json.dumps(body)])
        return cursor.fetchone()[0]


def _send_and_clear(row_id: int, kind: str, body: dict[str, Any], send: Send) -> None:
    """After commit: never raises, so later on-commit hooks still run and a task that
    finished its node does not fail on the broker's account."""
    try:
        send(kind, body)
    except Exception:
        log.warning("broker refused %s message %s; the outbox relay sends it", kind, row_id)
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute(_DELETE_SQL, [row_id])
    except Exception:  # sent; the relay may send it once more, which is harmless
        log.warning("could not clear sent outbox message %s", row_id, exc_info=True)


_LOCK_SQL = "SELECT id FROM executions_outboxmessage WHERE id = %s FOR UPDATE SKIP LOCKED"


def _send_locked(row_id: int, kind: str, body: dict[str, Any], send: Send) -> None:
    """_send_and_clear for a long send: in a transaction holding the row's lock (the relay
    skips locked rows), sent and deleted together. A 10,000-task message took longer to send
    than the relay waits, and the relay sent it again."""
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(_LOCK_SQL, [row_id])
                if cursor.fetchone() is None:
                    return  # the relay is sending it
            send(kind, body)
            with connection.cursor() as cursor:
                cursor.execute(_DELETE_SQL, [row_id])
    except Exception:
        log.warning("broker refused %s message %s; the outbox relay sends it", kind, row_id)


def relay(send: Send, *, older_than: float | None = None, batch: int = 200) -> int:
    """Send the messages still waiting after `older_than` seconds; returns how many went
    out. Stops at the first refusal (the broker is still down): the rest wait for the next
    pass."""
    if older_than is None:
        older_than = settings.OUTBOX_RELAY_AFTER
    sent: list[int] = []
    with transaction.atomic():
        waiting = list(
            OutboxMessage.objects.select_for_update(skip_locked=True)
            .filter(created_at__lt=Now() - timedelta(seconds=older_than))
            .order_by("id")[:batch]
        )
        for message in waiting:
            try:
                send(message.kind, message.body)
            except Exception:
                log.warning("outbox relay: the broker still refuses messages")
                break
            sent.append(message.pk)
        if sent:
            OutboxMessage.objects.filter(pk__in=sent).delete()
    if sent:
        log.info("outbox relay sent %d message(s)", len(sent))
    return len(sent)


_WAITING_SQL = """
SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)
  FROM executions_outboxmessage
"""


def waiting() -> tuple[int, float]:
    """How many messages wait in the outbox, and the age of the oldest in seconds."""
    with connection.cursor() as cursor:
        cursor.execute(_WAITING_SQL)
        count, oldest = cursor.fetchone()
    return int(count), float(oldest)


class RelayThread(threading.Thread):
    """Calls relay() every OUTBOX_RELAY_INTERVAL seconds until stopped; a failing pass (the
    database is down) is logged and the next one tries again on a fresh connection."""

    def __init__(self, send: Send):
        super().__init__(name="outbox-relay", daemon=True)
        self._send = send
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(settings.OUTBOX_RELAY_INTERVAL):
            try:
                close_old_connections()
                while relay(self._send) and not self._stopped.is_set():
                    pass  # a backlog: drain it batch by batch
            except Exception:
                log.warning("outbox relay pass failed", exc_info=True)
                connection.close()
        connection.close()

    def stop(self) -> None:
        self._stopped.set()
