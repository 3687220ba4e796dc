"""Reading triggers and their deliveries: always scoped to their owner."""

from typing import Any

from django.http import Http404

from .models import Delivery, Trigger


def triggers_of_graph(graph):
    return Trigger.objects.filter(graph=graph).order_by("-created_at")


def trigger_get(*, user, trigger_id) -> Trigger:
    try:
        return Trigger.objects.select_related("graph").get(pk=trigger_id, owner=user)
    except (Trigger.DoesNotExist, ValueError) as exc:
        raise Http404("trigger not found") from exc


def deliveries_of(trigger: Trigger):
    return Delivery.objects.filter(trigger=trigger).order_by("-created_at", "-id")


def trigger_record(trigger: Trigger, url: str) -> dict[str, Any]:
    return {
        "id": trigger.pk,
        "graph_id": trigger.graph_id,
        "graph_version": trigger.graph_version,
        "preset_id": trigger.preset_id,
        "enabled": trigger.enabled,
        "auth": trigger.auth,
        "url": url,
        "filters": trigger.filters,
        "event_key": trigger.event_key,
        "created_at": trigger.created_at,
        "updated_at": trigger.updated_at,
    }


def delivery_record(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.pk,
        "delivery_id": delivery.delivery_id,
        "status": delivery.status,
        "reason": delivery.reason,
        "execution_id": delivery.execution_id,
        "woken": delivery.woken,
        "created_at": delivery.created_at,
    }
