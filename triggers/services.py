"""Webhook triggers: made, changed and deleted by their owner; their deliveries received
from anyone who knows the URL, and let in only with the trigger's secret.

A delivery is recorded whatever becomes of it: accepted (with the run it started), filtered
(its payload did not match), or rejected with the reason. A sender's delivery id makes it
idempotent: a unique constraint lets one accepted (or filtered) delivery hold each id, so
the same id twice, even at the same moment, starts one run."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import Http404

from blocks.catalogue.webhook_trigger import WEBHOOK_INPUT
from common.json_values import storable_problem
from common.rates import over_rate
from credentials.crypto import decrypt, encrypt
from credits.services import InsufficientCredits
from executions.reviews import event_deliver
from executions.runs import execution_create
from graphs.models import Graph
from graphs.selectors import preset_for_run, version_numbered
from graphs.validation import GraphInvalid

from .models import Delivery, Trigger

SIGNATURE_HEADER = "X-Hook-Signature"
TIMESTAMP_HEADER = "X-Hook-Timestamp"
TOKEN_HEADER = "X-Hook-Token"
DELIVERY_ID_HEADERS = ("X-Delivery-Id", "X-GitHub-Delivery")
# Headers a run never sees: what authenticates the sender, or looks like a secret.
_SECRET_HEADER_WORDS = ("auth", "cookie", "token", "secret", "signature", "key", "password")

WRITABLE = ("graph_version", "preset_id", "enabled", "auth", "filters", "event_key")


# --- the owner's side -----------------------------------------------------------------------


def trigger_create(*, owner, graph: Graph, values: dict[str, Any]) -> tuple[Trigger, str]:
    """A trigger of the graph, and its signing secret (shown this once). Raises
    GraphInvalid (its version, preset or filters) and stores nothing then."""
    fields: dict[str, Any] = {"graph_version": None, "preset_id": None, "enabled": True}
    fields["filters"], fields["event_key"] = {}, ""
    fields.update(values)
    _check(graph, fields)
    secret = secrets.token_urlsafe(32)
    trigger = Trigger.objects.create(
        owner=owner, graph=graph, secret_encrypted=encrypt(secret), **fields
    )
    return trigger, secret


def trigger_update(*, trigger: Trigger, values: dict[str, Any]) -> Trigger:
    fields = {name: getattr(trigger, name) for name in WRITABLE}
    fields.update(values)
    _check(trigger.graph, fields)
    for name, value in fields.items():
        setattr(trigger, name, value)
    trigger.save()
    return trigger


def trigger_delete(*, trigger: Trigger) -> None:
    trigger.delete()


def _check(graph: Graph, fields: dict[str, Any]) -> None:
    def invalid(field: str, message: str) -> GraphInvalid:
        return GraphInvalid([{"field": field, "message": message}])

    preset = None
    if fields.get("preset_id") is not None:
        preset = preset_for_run(graph=graph, preset_id=fields["preset_id"], field="preset_id")
    number = fields["graph_version"]
    if number is None and preset is not None:
        number = preset.graph_version
    version = version_numbered(graph, number)
    if version is None:
        raise invalid("graph_version", f"graph {graph.pk} has no version {number}")
    event_key = fields.get("event_key") or ""
    if (
        not isinstance(event_key, str)
        or len(event_key) > 200
        or (event_key and "" in event_key.split("."))
    ):
        raise invalid("event_key", 'a "dotted.path" of the payload, up to 200 characters')
    if event_key and not version.nodes.filter(block="wait_for_event").exists():
        raise invalid("event_key", "the graph has no wait_for_event node for events to wake")
    if not event_key and not version.nodes.filter(block="webhook_trigger").exists():
        raise invalid("graph_id", "the graph has no webhook_trigger node to start from")
    filters = fields["filters"]
    if not isinstance(filters, dict) or not all(isinstance(k, str) and k for k in filters):
        raise invalid("filters", 'an object of payload paths and values: {"action": "opened"}')


# --- deliveries -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """What became of a delivery: `outcome` is accepted, duplicate, filtered or event (an
    event trigger's: `woken` nodes woke), or why it was rejected (unknown, disabled,
    too_large, bad_signature, stale, rate_limited, not_json, no_event_key, no_credits,
    graph_invalid)."""

    outcome: str
    execution_id: Any = None
    reason: str = ""
    retry_after: float | None = None
    woken: int | None = None


def delivery_receive(
    trigger_id, *, body: bytes, headers: Mapping[str, str], query: Mapping[str, str]
) -> Received:
    """Let a delivery in (or not), record it, and start its run."""
    trigger = (
        Trigger.objects.select_related("graph", "owner", "preset").filter(pk=trigger_id).first()
    )
    if trigger is None:
        return Received("unknown", reason="no such trigger")
    delivery_id = next((headers[h] for h in DELIVERY_ID_HEADERS if headers.get(h)), "")[:200]

    def reject(outcome: str, reason: str, retry_after: float | None = None) -> Received:
        Delivery.objects.create(
            trigger=trigger, delivery_id=delivery_id, status=Delivery.Status.REJECTED,
            reason=reason[:500],
        )  # fmt: skip
        return Received(outcome, reason=reason, retry_after=retry_after)

    if not trigger.enabled:
        return reject("disabled", "the trigger is disabled")
    if len(body) > settings.TRIGGER_MAX_BODY_BYTES:
        return reject("too_large", f"the body is over {settings.TRIGGER_MAX_BODY_BYTES} bytes")
    refused = _authentication_problem(trigger, body, headers)
    if refused is not None:
        return reject(*refused)
    wait = over_rate(f"trigger:{trigger.pk}", settings.TRIGGER_RATE)
    if wait is not None:
        return reject("rate_limited", f"over TRIGGER_RATE ({settings.TRIGGER_RATE})", wait)
    try:
        payload = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return reject("not_json", "the body is not JSON")
    problem = storable_problem(payload)
    if problem:
        return reject("not_json", f"the body cannot be stored: {problem}")
    if not _matches(payload, trigger.filters):
        return _let_in(trigger, delivery_id, Delivery.Status.FILTERED, None)
    if trigger.event_key:
        key = _value_at(payload, trigger.event_key)
        if key is _ABSENT or isinstance(key, (dict, list)) or key is None:
            return reject("no_event_key", f"no event key (a value) at {trigger.event_key!r}")
        return _event_let_in(trigger, delivery_id, str(key), payload)
    delivery = {"payload": payload, "headers": _safe_headers(headers), "query": dict(query)}
    try:
        return _let_in(trigger, delivery_id, Delivery.Status.ACCEPTED, delivery)
    except InsufficientCredits as exc:
        return reject("no_credits", f"the graph's owner cannot pay for the run: {exc}")
    except GraphInvalid as exc:
        return reject("graph_invalid", "; ".join(p["message"] for p in exc.problems[:3]))
    except Http404 as exc:  # the pinned version is gone
        return reject("graph_invalid", str(exc))


def _let_in(trigger: Trigger, delivery_id: str, status: str, delivery) -> Received:
    """Record a delivery let in (holding its sender's id) and, if accepted, start its run,
    in one transaction; a sender's id already let in answers that delivery's run."""
    with transaction.atomic():
        try:
            with transaction.atomic():
                record = Delivery.objects.create(
                    trigger=trigger, delivery_id=delivery_id, status=status
                )
        except IntegrityError:
            first = Delivery.objects.filter(
                trigger=trigger,
                delivery_id=delivery_id,
                status__in=[Delivery.Status.ACCEPTED, Delivery.Status.FILTERED],
            ).first()
            return Received("duplicate", first.execution_id if first else None)
        if delivery is None:
            return Received("filtered", reason="the payload does not match the filters")
        execution = execution_create(
            user=trigger.owner,
            graph=trigger.graph,
            inputs={WEBHOOK_INPUT: delivery},
            version=trigger.graph_version,
            preset=trigger.preset,
        )
        record.execution = execution
        record.save(update_fields=["execution"])
    return Received("accepted", execution.pk)


def _event_let_in(trigger: Trigger, delivery_id: str, key: str, payload: Any) -> Received:
    """An event trigger's delivery: recorded (a sender's id once), then its payload wakes
    the graph's runs waiting on `key`, in one transaction."""
    with transaction.atomic():
        try:
            with transaction.atomic():
                record = Delivery.objects.create(
                    trigger=trigger, delivery_id=delivery_id, status=Delivery.Status.ACCEPTED
                )
        except IntegrityError:
            return Received("duplicate")
        record.woken = event_deliver(
            user_id=trigger.owner_id, key=key, payload=payload, graph_id=trigger.graph_id
        )
        record.reason = f"event {key!r}"[:500]
        record.save(update_fields=["woken", "reason"])
    return Received("event", woken=record.woken)


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Hook-Signature value of a delivery: sha256=HMAC-SHA256(secret, "ts.body")."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def _authentication_problem(
    trigger: Trigger, body: bytes, headers: Mapping[str, str]
) -> tuple[str, str] | None:
    secret = decrypt(trigger.secret_encrypted)
    if trigger.auth == Trigger.Auth.TOKEN:
        given = headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            return "bad_signature", f"missing or wrong {TOKEN_HEADER}"
        return None
    timestamp, given = headers.get(TIMESTAMP_HEADER, ""), headers.get(SIGNATURE_HEADER, "")
    if not timestamp or not given:
        return "bad_signature", f"{SIGNATURE_HEADER} and {TIMESTAMP_HEADER} are required"
    if not hmac.compare_digest(given.encode(), signature(secret, timestamp, body).encode()):
        return "bad_signature", "the signature does not match"
    try:
        age = abs(time.time() - int(timestamp))
    except ValueError:
        return "bad_signature", f"{TIMESTAMP_HEADER} must be unix seconds"
    if age > settings.TRIGGER_REPLAY_SECONDS:
        return "stale", f"the timestamp is {age:.0f} s off (replays are refused)"
    return None


def _matches(payload: Any, filters: dict[str, Any]) -> bool:
    """Whether every "dotted.path" of the filters holds its value in the payload."""
    return all(_value_at(payload, path) == expected for path, expected in filters.items())


_ABSENT = object()


def _value_at(payload: Any, path: str) -> Any:
    """The value at a "dotted.path" (list items by index), or _ABSENT."""
    value = payload
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _ABSENT
    return value


def _safe_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        name: value
        for name, value in headers.items()
        if not any(word in name.lower() for word in _SECRET_HEADER_WORDS)
    }
