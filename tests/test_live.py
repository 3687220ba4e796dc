"""The live stream end to end: uvicorn serving the ASGI app, a real worker, a real WebSocket
client. Checks the event sequence of completed, failed and cancelled runs."""

import json
import time
from contextlib import ExitStack
from urllib.parse import quote

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from accounts.services import token_issue

from .conftest import create_graph, wait_for_run
from .documents import greeting, link, node

pytestmark = pytest.mark.integration


@pytest.fixture
def token(user):
    return token_issue(user=user)[0]


@pytest.fixture
def live(asgi_server, token, worker):
    with ExitStack() as sockets:

        def open_socket(key=token):
            url = f"ws://{asgi_server}/ws/executions/?token={quote(key)}"
            return sockets.enter_context(connect(url, open_timeout=10))

        yield open_socket


def receive(ws, timeout=30.0):
    return json.loads(ws.recv(timeout=timeout))


def until_terminal(ws, run_id, timeout=60.0):
    """Every message about `run_id` up to and including its terminal execution event."""
    deadline = time.monotonic() + timeout
    messages = []
    while True:
        message = receive(ws, timeout=max(0.1, deadline - time.monotonic()))
        if message.get("execution_id", message.get("id")) != run_id:
            continue
        messages.append(message)
        if message["type"] == "execution" and message.get("terminal"):
            return messages
        if message["type"] == "snapshot" and message.get("terminal"):
            return messages


def check_sequence(messages, final_status):
    """Snapshot first; seq rising by one without gaps; the terminal event last."""
    assert messages[0]["type"] == "snapshot"
    seqs = [m["seq"] for m in messages]
    assert seqs[1:] == list(range(seqs[0] + 1, seqs[0] + len(seqs))), seqs
    assert messages[-1]["type"] == "execution" and messages[-1]["status"] == final_status
    assert all(
        m["type"] != "execution" or m is messages[-1] or not m.get("terminal") for m in messages
    )


def start_with_graph_subscription(api, ws, document, inputs=None):
    graph = create_graph(api, document)
    ws.send(json.dumps({"action": "subscribe", "graph_id": graph["id"]}))
    assert receive(ws) == {"type": "subscribed", "graph_id": graph["id"]}
    response = api.post(
        f"/api/graphs/{graph['id']}/execute/", {"inputs": inputs or {}}, format="json"
    )
    assert response.status_code == 201
    return response.json()["id"]


def test_a_completed_run_streams_every_change_in_order(api, live):
    ws = live()
    run_id = start_with_graph_subscription(api, ws, greeting(), {"who": "Ada"})
    messages = until_terminal(ws, run_id)
    check_sequence(messages, "COMPLETED")
    assert messages[-1]["outputs"] == {"greeting": ["Hello Ada!"]}
    seen = [(m["node_id"], m["status"]) for m in messages if m["type"] == "node"]
    snapshot_nodes = {(n["node_id"], n["status"]) for n in messages[0]["node_executions"]}
    # Every node reached COMPLETED, in the snapshot or in the events after it.
    for node_id in ("who", "greet", "out"):
        assert (node_id, "COMPLETED") in set(seen) | snapshot_nodes
    # greet's output reached the client: in its COMPLETED event, or in the snapshot if the
    # subscription came after it.
    greet_outputs = [
        m["outputs"] for m in messages if m.get("node_id") == "greet" and m["status"] == "COMPLETED"
    ] + [
        n["output_data"]
        for n in messages[0]["node_executions"]
        if n["node_id"] == "greet" and n["status"] == "COMPLETED"
    ]
    assert greet_outputs and greet_outputs[0] == {"output": ["Hello Ada!"]}


def test_a_subscriber_sees_a_run_from_its_start_when_subscribed_by_execution(api, live):
    """Subscribing to a run right after creating it: snapshot, then each node QUEUED,
    RUNNING, COMPLETED, then the terminal event."""
    ws = live()
    document = {
        "name": "Slow start",
        "nodes": [node("wait", "sleep", seconds=0.5, value=7), node("out", "output", name="o")],
        "links": [link("wait", "output", "out", "value")],
    }
    graph = create_graph(api, document)
    run_id = api.post(f"/api/graphs/{graph['id']}/execute/", {}, format="json").json()["id"]
    ws.send(json.dumps({"action": "subscribe", "execution_id": run_id}))
    messages = until_terminal(ws, run_id)
    check_sequence(messages, "COMPLETED")
    statuses = [(m["node_id"], m["status"]) for m in messages if m["type"] == "node"]
    assert ("out", "QUEUED") in statuses and ("out", "COMPLETED") in statuses
    assert statuses.index(("out", "QUEUED")) < statuses.index(("out", "COMPLETED"))


def test_a_failed_run_ends_with_its_failure(api, live):
    ws = live()
    document = {
        "name": "Broken",
        "nodes": [node("div", "calculator", operation="divide", a=1, b=0)],
    }
    run_id = start_with_graph_subscription(api, ws, document)
    messages = until_terminal(ws, run_id)
    check_sequence(messages, "FAILED")
    assert "division by zero" in messages[-1]["error"]


def test_a_cancelled_run_ends_with_its_cancel(api, live):
    ws = live()
    run_id = start_with_graph_subscription(
        api,
        ws,
        {
            "name": "Long",
            "nodes": [node("wait", "sleep", seconds=30), node("o", "output", name="o")],
            "links": [link("wait", "output", "o", "value")],
        },
    )
    deadline = time.monotonic() + 20
    while True:  # until the sleep runs
        message = receive(ws)
        if message.get("node_id") == "wait" and message.get("status") == "RUNNING":
            break
        if message["type"] == "snapshot" and any(
            n["status"] == "RUNNING" for n in message["node_executions"]
        ):
            break
        assert time.monotonic() < deadline
    assert api.post(f"/api/executions/{run_id}/cancel/").status_code == 200
    rest = until_terminal(ws, run_id)
    assert rest[-1]["status"] == "CANCELLED"
    assert ("wait", "CANCELLED") in [
        (m["node_id"], m["status"]) for m in rest if m["type"] == "node"
    ]


def test_a_late_subscriber_gets_the_final_state(api, live):
    graph = create_graph(api, greeting())
    run_id = api.post(f"/api/graphs/{graph['id']}/execute/", {}, format="json").json()["id"]
    wait_for_run(api, run_id)
    ws = live()
    ws.send(json.dumps({"action": "subscribe", "execution_id": run_id}))
    snapshot = receive(ws)
    assert snapshot["type"] == "snapshot" and snapshot["status"] == "COMPLETED"
    record = api.get(f"/api/executions/{run_id}/").json()
    assert snapshot["ended_at"] == record["ended_at"] and "T" in snapshot["ended_at"]  # ISO
    assert snapshot["terminal"] and snapshot["outputs"] == {"greeting": ["Hello world!"]}
    ws.send(json.dumps({"action": "ping"}))
    # Nothing about the run came after its snapshot (the user's notifications may).
    while (message := receive(ws))["type"] == "notification":
        pass
    assert message == {"type": "pong"}


def test_other_users_runs_and_graphs_are_refused(api, live, other_user):
    graph = create_graph(api, greeting())
    run_id = api.post(f"/api/graphs/{graph['id']}/execute/", {}, format="json").json()["id"]
    intruder = live(token_issue(user=other_user)[0])
    intruder.send(json.dumps({"action": "subscribe", "execution_id": run_id}))
    assert receive(intruder) == {
        "type": "error",
        "message": "execution not found",
        "field": "execution_id",
        "execution_id": run_id,
    }
    intruder.send(json.dumps({"action": "subscribe", "graph_id": graph["id"]}))
    assert receive(intruder)["message"] == "graph not found"
    intruder.send(json.dumps({"action": "subscribe", "execution_id": "not-a-uuid"}))
    assert receive(intruder)["type"] == "error"
    intruder.send("not json")
    assert receive(intruder)["message"] == "messages must be JSON"
    intruder.send(json.dumps({"action": "subscribe", "execution_id": 7}))
    assert receive(intruder)["field"] == "execution_id"
    intruder.send(json.dumps({"action": "subscribe"}))
    assert receive(intruder)["field"] == "execution_id"
    intruder.send(json.dumps({"action": "jump"}))
    unknown = receive(intruder)
    assert unknown["field"] == "action" and unknown["message"].startswith("unknown action 'jump'")
    intruder.send(json.dumps({"action": "ping"}))
    assert receive(intruder) == {"type": "pong"}  # and no event of the other run leaked


@pytest.mark.parametrize("key", ["", "0" * 40, "bad\u0000token"])
def test_a_missing_or_bad_token_closes_with_4401(asgi_server, worker, key):
    url = f"ws://{asgi_server}/ws/executions/?token={quote(key)}"
    with connect(url, open_timeout=10) as ws:
        if key:
            assert "authentication required" in receive(ws)["message"]
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=5)
        assert closed.value.rcvd.code == 4401


def test_big_outputs_are_truncated_in_events_not_in_the_api(api, live, settings):
    ws = live()
    big = "x" * 40_000
    document = {
        "name": "Big",
        "nodes": [node("big", "store_value", input=big), node("o", "output", name="big")],
        "links": [link("big", "output", "o", "value")],
    }
    run_id = start_with_graph_subscription(api, ws, document)
    messages = until_terminal(ws, run_id)
    node_events = [m for m in messages if m["type"] == "node" and m.get("outputs")]
    assert node_events and all(m.get("truncated") for m in node_events)
    assert (
        node_events[0]["outputs"]["truncated"]
        and len(node_events[0]["outputs"]["preview"]) <= 16384
    )
    assert messages[-1].get("truncated") and messages[-1]["outputs"]["size"] > 40_000
    assert api.get(f"/api/executions/{run_id}/").json()["outputs"] == {"big": [big]}


def test_a_review_streams_its_wait_the_runs_review_status_and_the_decision(api, live):
    ws = live()
    document = {
        "name": "Reviewed live",
        "nodes": [
            node("check", "human_review", data={"to": "ada@example.com"}, message="Send?"),
            node("out", "output", name="sent"),
        ],
        "links": [link("check", "approved_data", "out", "value")],
    }
    run_id = start_with_graph_subscription(api, ws, document)
    messages = []
    while not any(m.get("type") == "execution" and m.get("status") == "REVIEW" for m in messages):
        message = receive(ws)
        if message.get("execution_id", message.get("id")) == run_id:
            messages.append(message)
    parked = [m for m in messages if m.get("node_id") == "check" and m.get("status") == "REVIEW"]
    assert parked and parked[0]["wait"]["kind"] == "review"
    assert parked[0]["wait"]["status"] == "pending"
    review_id = parked[0]["wait"]["id"]
    approved = api.post(f"/api/reviews/{review_id}/approve/", {"message": "go"}, format="json")
    assert approved.status_code == 200
    rest = until_terminal(ws, run_id)
    check_sequence(messages + rest, "COMPLETED")
    decided = [m for m in rest if m.get("wait", {}).get("id") == review_id]
    assert decided and decided[0]["wait"]["status"] == "approved"
    assert decided[0]["wait"]["message"] == "go"
    statuses = [(m.get("node_id"), m["status"]) for m in rest if m["type"] in ("node", "execution")]
    assert statuses.index((None, "RUNNING")) < statuses.index(("check", "COMPLETED"))
    assert rest[-1]["outputs"] == {"sent": [{"to": "ada@example.com"}]}
