"""Webhook triggers (issue 17): deliveries start runs only with the trigger's secret; every
delivery is recorded, whatever becomes of it."""

import json
import time

import pytest

from executions.models import GraphExecution
from triggers.models import Delivery, Trigger
from triggers.services import signature

from .conftest import create_graph, wait_for_run

pytestmark = pytest.mark.django_db


def hooked(**extra):
    """A graph that starts from a webhook and outputs what it got."""
    return {
        "name": "Hooked",
        "nodes": [
            {"id": "hook", "block": "webhook_trigger"},
            {"id": "body", "block": "output", "input_default": {"name": "payload"}},
            {"id": "head", "block": "output", "input_default": {"name": "headers"}},
            {"id": "query", "block": "output", "input_default": {"name": "query"}},
        ],
        "links": [
            {"source_id": "hook", "source_name": "payload", "sink_id": "body",
             "sink_name": "value"},
            {"source_id": "hook", "source_name": "headers", "sink_id": "head",
             "sink_name": "value"},
            {"source_id": "hook", "source_name": "query", "sink_id": "query",
             "sink_name": "value"},
        ],
        **extra,
    }  # fmt: skip


def make_trigger(api, graph, **body):
    response = api.post(f"/api/graphs/{graph['id']}/triggers/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def deliver(client, trigger, payload, *, secret=None, timestamp=None, headers=None, raw=None):
    """POST a delivery to the trigger's URL, signed with `secret` (the trigger's by default)."""
    body = raw if raw is not None else json.dumps(payload).encode()
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signed = {
        "X-Hook-Timestamp": stamp,
        "X-Hook-Signature": signature(secret or trigger["secret"], stamp, body),
    }
    path = trigger["url"].split("://", 1)[1].split("/", 1)[1]
    return client.post(
        "/" + path + "?source=test", data=body, content_type="application/json",
        headers={**signed, **(headers or {})},
    )  # fmt: skip


def test_a_trigger_is_made_with_its_url_and_secret_once_and_scoped_to_its_owner(api, other_api):
    graph = create_graph(api, hooked())
    trigger = make_trigger(api, graph, filters={"action": "opened"})
    assert trigger["url"].endswith(f"/hooks/{trigger['id']}/") and len(trigger["secret"]) >= 40
    shown = api.get(f"/api/triggers/{trigger['id']}/").json()
    assert "secret" not in shown and shown["filters"] == {"action": "opened"}
    assert trigger["secret"] not in Trigger.objects.get().secret_encrypted  # encrypted at rest
    listed = api.get(f"/api/graphs/{graph['id']}/triggers/").json()["results"]
    assert [t["id"] for t in listed] == [trigger["id"]]
    for method in ("get", "patch", "delete"):
        assert getattr(other_api, method)(f"/api/triggers/{trigger['id']}/").status_code == 404
    assert other_api.get(f"/api/triggers/{trigger['id']}/deliveries/").status_code == 404
    changed = api.patch(f"/api/triggers/{trigger['id']}/", {"enabled": False}, format="json")
    assert changed.status_code == 200 and changed.json()["enabled"] is False


def test_a_graph_without_a_webhook_trigger_node_gets_no_trigger(api):
    from .documents import greeting

    graph = create_graph(api, greeting())
    response = api.post(f"/api/graphs/{graph['id']}/triggers/", {}, format="json")
    assert response.status_code == 400 and "webhook_trigger" in response.json()["detail"]
    assert not Trigger.objects.exists()


@pytest.mark.integration
def test_a_signed_delivery_starts_a_run_with_its_payload_and_no_secret_headers(api, client, worker):
    graph = create_graph(api, hooked())
    trigger = make_trigger(api, graph)
    response = deliver(
        client, trigger, {"action": "opened", "n": 1},
        headers={"X-Delivery-Id": "d-1", "X-Custom": "kept", "Authorization": "Bearer s3cret"},
    )  # fmt: skip
    assert response.status_code == 202, response.content
    run_id = response.json()["execution_id"]
    record = wait_for_run(api, run_id)
    assert record["status"] == "COMPLETED"
    assert record["outputs"]["payload"] == [{"action": "opened", "n": 1}]
    assert record["outputs"]["query"] == [{"source": "test"}]
    headers = record["outputs"]["headers"][0]
    assert headers["X-Custom"] == "kept" and headers["X-Delivery-Id"] == "d-1"
    assert not {"Authorization", "X-Hook-Signature"} & set(headers)
    assert "s3cret" not in json.dumps(record) and trigger["secret"] not in json.dumps(record)
    deliveries = api.get(f"/api/triggers/{trigger['id']}/deliveries/").json()["results"]
    assert [(d["status"], d["execution_id"]) for d in deliveries] == [("accepted", run_id)]


def test_deliveries_that_may_not_start_a_run_start_nothing_and_are_recorded(api, client, settings):
    settings.TRIGGER_MAX_BODY_BYTES = 1000
    graph = create_graph(api, hooked())
    trigger = make_trigger(api, graph, filters={"action": "opened"})
    cases = [
        (deliver(client, trigger, {"action": "opened"}, secret="not-the-secret"), 401),
        (deliver(client, trigger, {"action": "opened"}, timestamp=int(time.time()) - 3600), 401),
        (deliver(client, trigger, {"action": "opened", "pad": "x" * 2000}), 413),
        (deliver(client, trigger, None, raw=b"{not json"), 400),
        (deliver(client, trigger, {"action": "closed"}), 202),  # filtered
    ]
    for response, code in cases:
        assert response.status_code == code, response.content
    assert not GraphExecution.objects.exists()
    recorded = api.get(f"/api/triggers/{trigger['id']}/deliveries/").json()["results"]
    assert sorted(d["status"] for d in recorded) == ["filtered"] + ["rejected"] * 4
    reasons = " ".join(d["reason"] for d in recorded)
    for words in ("signature does not match", "replays are refused", "over 1000 bytes", "JSON"):
        assert words in reasons
    unsigned = client.post(
        trigger["url"].split("://", 1)[1].split("/", 1)[1].join(["/", ""]),
        data=b"{}", content_type="application/json",
    )  # fmt: skip
    assert unsigned.status_code == 401


def test_a_sender_delivery_id_starts_one_run_and_a_forged_one_does_not_take_it(api, client):
    graph = create_graph(api, hooked())
    trigger = make_trigger(api, graph)
    forged = deliver(client, trigger, {"n": 0}, secret="wrong", headers={"X-Delivery-Id": "d"})
    assert forged.status_code == 401
    first = deliver(client, trigger, {"n": 1}, headers={"X-Delivery-Id": "d"})
    again = deliver(client, trigger, {"n": 2}, headers={"X-Delivery-Id": "d"})
    assert first.status_code == again.status_code == 202
    assert again.json()["execution_id"] == first.json()["execution_id"]
    assert again.json()["outcome"] == "duplicate"
    assert GraphExecution.objects.count() == 1
    assert GraphExecution.objects.get().inputs["$webhook"]["payload"] == {"n": 1}


def test_unknown_and_disabled_triggers_are_404_and_a_flood_is_429(api, client, settings):
    graph = create_graph(api, hooked())
    trigger = make_trigger(api, graph)
    missing = client.post("/hooks/00000000-0000-4000-8000-000000000000/", data=b"{}",
                          content_type="application/json")  # fmt: skip
    assert missing.status_code == 404
    settings.TRIGGER_RATE = "2/minute"
    codes = [deliver(client, trigger, {"n": i}).status_code for i in range(3)]
    assert codes == [202, 202, 429]
    api.patch(f"/api/triggers/{trigger['id']}/", {"enabled": False}, format="json")
    assert deliver(client, trigger, {"n": 9}).status_code == 404
    assert GraphExecution.objects.count() == 2
    reasons = set(Delivery.objects.filter(status="rejected").values_list("reason", flat=True))
    assert any("TRIGGER_RATE" in r for r in reasons) and "the trigger is disabled" in reasons


def test_a_user_without_credits_gets_a_recorded_rejection_not_a_run(api, client, user):
    from credits.services import balance_of, ledger_apply

    paid = hooked()
    paid["nodes"].append({"id": "nap", "block": "sleep", "input_default": {"seconds": 0}})
    paid["links"].append(
        {"source_id": "hook", "source_name": "payload", "sink_id": "nap", "sink_name": "value"}
    )  # sleep is a paid block
    graph = create_graph(api, paid)
    trigger = make_trigger(api, graph)
    ledger_apply(user_id=user.pk, amount=-balance_of(user.pk), type="ADJUSTMENT", reference="x")
    response = deliver(client, trigger, {"n": 1})
    assert response.status_code == 402, response.content
    assert not GraphExecution.objects.exists()
    rejected = Delivery.objects.get()
    assert rejected.status == "rejected" and "cannot pay" in rejected.reason


def test_token_auth_for_senders_that_cannot_sign(api, client):
    graph = create_graph(api, hooked())
    trigger = make_trigger(api, graph, auth="token")
    path = "/" + trigger["url"].split("://", 1)[1].split("/", 1)[1]
    good = client.post(path, data=b"{}", content_type="application/json",
                       headers={"X-Hook-Token": trigger["secret"]})  # fmt: skip
    bad = client.post(path, data=b"{}", content_type="application/json",
                      headers={"X-Hook-Token": "guess"})  # fmt: skip
    assert (good.status_code, bad.status_code) == (202, 401)


def test_deleting_the_graph_deletes_its_triggers_and_their_deliveries(api, client):
    graph = create_graph(api, hooked())
    trigger = make_trigger(api, graph)
    deliver(client, trigger, {"n": 1})
    assert api.delete(f"/api/graphs/{graph['id']}/").status_code == 204
    assert not Trigger.objects.exists() and not Delivery.objects.exists()
    assert deliver(client, trigger, {"n": 2}).status_code == 404
