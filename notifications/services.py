"""Notifications: recorded for the user, then (after commit) pushed on their live stream,
e-mailed if they opted in, and POSTed to the graph's webhook URL, signed, if it has one."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import timedelta
from typing import Any

import httpx2
import redis
from celery import current_app
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

import outbound
from common import redis_clients

from .models import (
    Notification,
    NotificationSettings,
    WebhookAttempt,
    WebhookDelivery,
    new_webhook_secret,
)

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Agentgraph-Signature"
TIMESTAMP_HEADER = "X-Agentgraph-Timestamp"


def notify(
    *,
    user_id: int,
    kind: str,
    message: str,
    data: dict[str, Any] | None = None,
    webhook_url: str = "",
) -> Notification:
    """Record a notification, with the e-mail and webhook it owes, in the caller's
    transaction; deliver after commit. Delivering never fails the caller: what could not be
    handed on stays owed and `redeliver` (beat) sends it again."""
    prefs = settings_of(user_id)
    note = Notification.objects.create(
        user_id=user_id,
        kind=kind,
        message=message,
        data=data or {},
        email_pending=prefs.email_enabled,
    )
    delivery = None
    if webhook_url:
        delivery = WebhookDelivery.objects.create(notification=note, url=webhook_url)
    transaction.on_commit(lambda: _deliver(note, delivery))
    return note


# The tasks' names (tasks.py declares them under these): published by name, so this module
# does not import the tasks that call it.
SEND_EMAIL = "notifications.send_email"
DELIVER_WEBHOOK = "notifications.deliver_webhook"


def _send(task_name: str, pk: int) -> None:
    current_app.send_task(task_name, args=[pk])


def _deliver(note: Notification, delivery: WebhookDelivery | None) -> None:
    steps = [lambda: _push(note)]
    if note.email_pending:
        steps.append(lambda: _send(SEND_EMAIL, note.pk))
    if delivery is not None:
        steps.append(lambda: _send(DELIVER_WEBHOOK, delivery.pk))
    for step in steps:
        try:
            step()
        except Exception:  # the broker is away: redeliver() sends it when it is back
            log.warning("could not hand on notification %s", note.pk, exc_info=True)


# A delivery still owed this long after its last try (or its creation) was lost on the way.
REDELIVER_AFTER_SECONDS = 120


def redeliver() -> dict[str, int]:
    """Send again what is owed and was lost: e-mails not sent, webhook deliveries PENDING
    with no try for longer than their backoff allows. Sending twice is harmless: the e-mail
    task and webhook_attempt look at the state first."""
    now = timezone.now()
    stale = now - timedelta(seconds=REDELIVER_AFTER_SECONDS)
    emails = list(
        Notification.objects.filter(email_pending=True, created_at__lt=stale).values_list(
            "pk", flat=True
        )[:500]
    )
    for pk in emails:
        _send(SEND_EMAIL, pk)
    webhooks = 0
    pending = WebhookDelivery.objects.filter(
        status=WebhookDelivery.Status.PENDING, created_at__lt=stale
    ).annotate(last_try=Max("tries__created_at"))[:500]
    for delivery in pending:
        backoff = settings.WEBHOOK_RETRY_BASE_SECONDS * 2**delivery.attempts
        due = (delivery.last_try or delivery.created_at) + timedelta(
            seconds=backoff + REDELIVER_AFTER_SECONDS
        )
        if due < now:
            _send(DELIVER_WEBHOOK, delivery.pk)
            webhooks += 1
    return {"emails": len(emails), "webhooks": webhooks}


def webhook_secret_rotate(user_id: int) -> NotificationSettings:
    """A new webhook secret for the user; deliveries from now on are signed with it."""
    prefs = settings_of(user_id)
    prefs.webhook_secret = new_webhook_secret()
    prefs.save(update_fields=["webhook_secret"])
    return prefs


def settings_of(user_id: int) -> NotificationSettings:
    prefs, _ = NotificationSettings.objects.get_or_create(user_id=user_id)
    return prefs


def payload(note: Notification) -> dict[str, Any]:
    return {
        "id": note.pk,
        "kind": note.kind,
        "message": note.message,
        "data": note.data,
        "created_at": note.created_at.isoformat(),
        "read_at": note.read_at.isoformat() if note.read_at else None,
    }


# Every user's notifications, in one capped Redis stream: each server process reads it once
# and hands each entry to the sockets of its user (executions/feeds.py). One XADD per
# notification on the process's shared client; a channel-layer group_send from sync code
# built an event loop and a Redis connection for every run that ended (3 ms each).
STREAM_KEY = "agentgraph:notifications"
STREAM_MAXLEN = 10_000


def _push(note: Notification) -> None:
    message = json.dumps({"type": "notification", **payload(note)}, default=str)
    try:
        redis_clients.shared_client(settings.REDIS_URL).xadd(
            STREAM_KEY,
            {"u": note.user_id, "e": message},
            maxlen=STREAM_MAXLEN,
            approximate=True,
        )
    except redis.RedisError:  # the list at /api/notifications/ still has it
        log.warning("could not push notification %s", note.pk, exc_info=True)


def email(notification_id: int) -> None:
    """Send the e-mail a notification owes, and mark it sent. The row stays locked while it
    is sent: a duplicate task at the same time skips it, a later one finds nothing owed; if
    sending fails it stays owed (the task retries, then redeliver())."""
    with transaction.atomic():
        note = (
            Notification.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("user")
            .filter(pk=notification_id, email_pending=True)
            .first()
        )
        if note is None:
            return
        if note.user.email:
            send_mail(
                f"[agentgraph] {note.message[:80]}",
                note.message,
                settings.DEFAULT_FROM_EMAIL,
                [note.user.email],
            )
        Notification.objects.filter(pk=notification_id).update(email_pending=False)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over `timestamp.body`: receivers recompute it with their secret and
    refuse old timestamps (replays)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


class DeliveryFailed(Exception):
    pass


def webhook_attempt(delivery_id: int) -> None:
    """One try at a webhook delivery, recorded. Raises DeliveryFailed to be retried."""
    delivery = WebhookDelivery.objects.select_related("notification").get(pk=delivery_id)
    if delivery.status != WebhookDelivery.Status.PENDING:
        return
    note = delivery.notification
    body = json.dumps(payload(note)).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(settings_of(note.user_id).webhook_secret, timestamp, body),
    }
    started = time.monotonic()
    status_code, error = None, ""
    try:
        outbound.check_url(delivery.url)  # the same guard as every request a run makes
        with outbound.client(timeout=settings.WEBHOOK_TIMEOUT_SECONDS) as client:
            status_code = client.post(delivery.url, content=body, headers=headers).status_code
    except (httpx2.HTTPError, *outbound.Refused) as exc:
        error = str(exc) or type(exc).__name__
    WebhookAttempt.objects.create(
        delivery=delivery,
        status_code=status_code,
        error=error,
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    delivered = status_code is not None and 200 <= status_code < 300
    attempts = delivery.attempts + 1
    if delivered:
        status = WebhookDelivery.Status.DELIVERED
    elif attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
        status = WebhookDelivery.Status.FAILED
    else:
        status = WebhookDelivery.Status.PENDING
    WebhookDelivery.objects.filter(pk=delivery.pk, status=WebhookDelivery.Status.PENDING).update(
        status=status, attempts=attempts, delivered_at=timezone.now() if delivered else None
    )
    if status == WebhookDelivery.Status.PENDING:
        raise DeliveryFailed(f"attempt {attempts}: {status_code or error}")


def mark_read(*, user, ids: list[int] | None = None) -> int:
    unread = Notification.objects.filter(user=user, read_at=None)
    if ids is not None:
        unread = unread.filter(pk__in=ids)
    return unread.update(read_at=timezone.now())
