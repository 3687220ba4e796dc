"""Cancel, pause, resume, retries, time limits and sub-graphs, end to end on a real worker."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import override_settings

from config.celery import app
from credits.models import CreditTransaction
from credits.services import balance_of, ledger_apply
from executions import recovery
from executions.models import GraphExecution, NodeExecution, Wait

from .conftest import create_graph, nodes_of, run_graph, wait_for_run
from .documents import link, node, sleep_chain

pytestmark = pytest.mark.integration


def execute(api, graph, inputs=None, **body):
    response = api.post(
        f"/api/graphs/{graph['id']}/execute/", {"inputs": inputs or {}, **body}, format="json"
    )
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def wait_until(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout}s"
        time.sleep(0.05)


def node_status(execution_id, node_id):
    row = NodeExecution.objects.filter(execution_id=execution_id, node_id=node_id).last()
    return row.status if row else None


def slow_then_out(seconds):
    return {
        "name": "Slow",
        "nodes": [
            node("wait", "sleep", seconds=seconds, value="late"),
            node("out", "output", name="result"),
        ],
        "links": [link("wait", "output", "out", "value")],
    }


def set_balance(user, amount, ref):
    ledger_apply(
        user_id=user.pk, amount=amount - balance_of(user.pk), type="ADJUSTMENT", reference=ref
    )


# --- cancel ------------------------------------------------------------------------------------


def test_cancel_stops_a_long_run_within_seconds(api, user, worker):
    graph = create_graph(api, slow_then_out(60))
    eid = execute(api, graph)
    wait_until(lambda: node_status(eid, "wait") == "RUNNING", what="the sleep to start")
    # Charged once its block runs (a cancel between its claim and its charge, which this
    # test raced, rightly charges nothing).
    wait_until(
        lambda: CreditTransaction.objects.filter(execution_id=eid).exists(),
        what="the sleep's charge",
    )
    started = time.monotonic()
    response = api.post(f"/api/executions/{eid}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "CANCELLED"
    record = wait_for_run(api, eid)
    assert record["status"] == "CANCELLED" and time.monotonic() - started < 5
    assert nodes_of(record, "wait")[0]["status"] == "CANCELLED"
    task_id = nodes_of(record, "wait")[0]["task_id"]

    def still_running():
        active = app.control.inspect(timeout=1).active() or {}
        return any(t["id"] == task_id for tasks in active.values() for t in tasks)

    wait_until(lambda: not still_running(), timeout=10, what="the sleeping task to be terminated")
    time.sleep(1)
    assert nodes_of(api.get(f"/api/executions/{eid}/").json(), "out") == []  # nothing later
    rows = CreditTransaction.objects.filter(execution_id=eid)
    assert [r.reference.split(":")[0] for r in rows] == ["usage"]  # its run, no settlement
    again = api.post(f"/api/executions/{eid}/cancel/")
    assert again.status_code == 409 and "already ended" in again.json()["detail"]


def test_cancel_stops_sub_graph_runs(api, user, worker):
    child = create_graph(api, slow_then_out(60))
    parent = create_graph(
        api,
        {
            "name": "Parent",
            "nodes": [
                node("sub", "agent_executor", graph_id=child["id"]),
                node("out", "output", name="result"),
            ],
            "links": [link("sub", "result", "out", "value")],
        },
    )
    eid = execute(api, parent)
    wait_until(
        lambda: GraphExecution.objects.filter(depth=1, status="RUNNING").exists(),
        what="the child run",
    )
    child_run = GraphExecution.objects.get(depth=1)
    wait_until(lambda: node_status(child_run.pk, "wait") == "RUNNING", what="the child's sleep")
    # the parent's node is parked on the child, holding no worker
    assert node_status(eid, "sub") == "WAITING"
    parked = Wait.objects.get(execution_id=eid)
    assert (parked.kind, parked.status, parked.child_execution_id) == (
        "subgraph",
        "pending",
        child_run.pk,
    )
    assert api.post(f"/api/executions/{eid}/cancel/").status_code == 200
    child_run.refresh_from_db()
    assert child_run.status == "CANCELLED"
    assert node_status(child_run.pk, "wait") == "CANCELLED"
    assert node_status(eid, "sub") == "CANCELLED"
    assert Wait.objects.get(pk=parked.pk).status == "cancelled"


# --- pause and resume --------------------------------------------------------------------------


def test_pause_lets_running_nodes_finish_and_starts_nothing_until_resume(api, user, worker):
    document = {
        "name": "Pausable",
        "nodes": [
            node("first", "sleep", seconds=1, value=20),
            node("double", "calculator", operation="multiply", b=2),
            node("out", "output", name="result"),
        ],
        "links": [link("first", "output", "double", "a"), link("double", "result", "out", "value")],
    }
    eid = execute(api, create_graph(api, document))
    wait_until(lambda: node_status(eid, "first") == "RUNNING", what="the first node")
    paused = api.post(f"/api/executions/{eid}/pause/")
    assert paused.status_code == 200 and paused.json()["status"] == "PAUSED"
    assert api.post(f"/api/executions/{eid}/pause/").status_code == 409
    wait_until(lambda: node_status(eid, "first") == "COMPLETED", what="the running node to finish")
    time.sleep(1.0)
    assert node_status(eid, "double") == "QUEUED"  # queued, not started
    assert GraphExecution.objects.get(pk=eid).status == "PAUSED"
    assert api.post(f"/api/executions/{eid}/resume/").json()["status"] == "RUNNING"
    record = wait_for_run(api, eid)
    assert record["status"] == "COMPLETED" and record["outputs"] == {"result": [40.0]}
    assert len(nodes_of(record, "double")) == 1


def test_resume_a_failed_run_reruns_only_what_had_not_completed(api, user, worker, staff_api):
    set_balance(user, 2, "two")
    eid = execute(api, create_graph(api, sleep_chain("Three paid")))
    failed = wait_for_run(api, eid)
    assert failed["status"] == "FAILED" and "insufficient credits" in failed["error"]
    staff_api.post(
        "/api/credits/grant/",
        {"username": user.username, "amount": 5, "type": "TOP_UP"},
        format="json",
    )
    assert api.post(f"/api/executions/{eid}/resume/").status_code == 200
    record = wait_for_run(api, eid)
    assert record["status"] == "COMPLETED", record
    assert record["outputs"] == {"done": ["v"]} and record["error"] is None
    assert len(nodes_of(record, "s0")) == 1 and len(nodes_of(record, "s1")) == 1  # not re-run
    assert [ne["status"] for ne in nodes_of(record, "s2")] == ["FAILED", "COMPLETED"]
    usage = CreditTransaction.objects.filter(execution_id=eid, type="USAGE")
    assert usage.count() == 3  # s0, s1 once each; s2 once, when it could pay
    assert balance_of(user.pk) == 4
    assert api.post(f"/api/executions/{eid}/resume/").status_code == 409  # completed


def test_resume_a_cancelled_run(api, user, worker):
    document = {
        "name": "Cancel then resume",
        "nodes": [node("wait", "sleep", seconds=30, value=1), node("out", "output", name="result")],
        "links": [link("wait", "output", "out", "value")],
    }
    graph = create_graph(api, document)
    eid = execute(api, graph)
    wait_until(lambda: node_status(eid, "wait") == "RUNNING", what="the sleep")
    api.post(f"/api/executions/{eid}/cancel/")
    # Resumed, the cancelled node runs again (a new node execution); cancel it once seen.
    assert api.post(f"/api/executions/{eid}/resume/").json()["status"] == "RUNNING"
    wait_until(
        lambda: NodeExecution.objects.filter(
            execution_id=eid, node_id="wait", status="RUNNING"
        ).exists(),
        what="the cancelled node to run again",
    )
    assert [n.status for n in NodeExecution.objects.filter(execution_id=eid, node_id="wait")] == [
        "CANCELLED",
        "RUNNING",
    ]
    api.post(f"/api/executions/{eid}/cancel/")
    assert GraphExecution.objects.get(pk=eid).status == "CANCELLED"


# --- retries and time limits -------------------------------------------------------------------


class _Flaky(BaseHTTPRequestHandler):
    calls = 0
    fail_first = 2

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).calls += 1
        ok = type(self).calls > type(self).fail_first
        body = b'{"ok": true}' if ok else b'{"busy": true}'
        self.send_response(200 if ok else 503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def flaky_server():
    _Flaky.calls = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def http_graph(url):
    return {
        "name": "Fetch",
        "nodes": [
            node("fetch", "http_request", url=url),
            node("ok", "output", name="ok"),
            node("bad", "output", name="server_error"),
        ],
        "links": [
            link("fetch", "response", "ok", "value"),
            link("fetch", "server_error", "bad", "value"),
        ],
    }


def test_a_flaky_endpoint_is_retried_until_it_answers(api, user, worker, flaky_server):
    url = f"http://127.0.0.1:{flaky_server.server_address[1]}/"
    record = run_graph(api, http_graph(url))
    assert record["status"] == "COMPLETED", record
    assert record["outputs"] == {"ok": [{"ok": True}]}
    fetch = nodes_of(record, "fetch")[0]
    assert fetch["attempts"] == 3 and _Flaky.calls == 3
    assert fetch["cost"] == 2  # charged once for its three attempts


def test_retries_stop_at_the_limit_and_the_last_answer_goes_to_its_pin(
    api, user, worker, flaky_server
):
    _Flaky.fail_first = 100
    try:
        url = f"http://127.0.0.1:{flaky_server.server_address[1]}/"
        record = run_graph(api, http_graph(url))
    finally:
        _Flaky.fail_first = 2
    assert record["outputs"] == {"server_error": [{"busy": True}]}
    assert nodes_of(record, "fetch")[0]["attempts"] == 4  # 1 + http_request's 3 retries


def test_a_node_past_its_time_limit_fails(api, user, worker):
    document = slow_then_out(30)
    document["nodes"][0]["timeout"] = 1
    started = time.monotonic()
    record = run_graph(api, document)
    assert record["status"] == "FAILED" and time.monotonic() - started < 10
    assert nodes_of(record, "wait")[0]["error"] == "timed out after 1 s"
    assert "timed out after 1 s" in record["error"]


@override_settings(ENGINE_MAX_EXECUTION_SECONDS=2)
def test_a_run_past_its_wall_clock_limit_fails_and_stops_its_nodes(api, user, worker):
    eid = execute(api, create_graph(api, slow_then_out(30)))
    wait_until(lambda: node_status(eid, "wait") == "RUNNING", what="the sleep")
    time.sleep(2.2)
    counts = recovery.watchdog()
    assert counts["deadline"] == 1
    record = wait_for_run(api, eid)
    assert record["status"] == "FAILED" and record["error"] == "timed out after 2 s"
    assert nodes_of(record, "wait")[0]["status"] == "CANCELLED"


# --- sub-graphs ----------------------------------------------------------------------------------


def test_sub_graph_outputs_come_out_by_name_and_its_cost_rolls_up(api, user, worker):
    child = create_graph(
        api,
        {
            "name": "Child",
            "nodes": [
                node("x", "input", name="x"),
                node("wait", "sleep", seconds=0),
                node("shout", "text_template", format="{{ v }}!"),
                node("y", "output", name="y"),
            ],
            "links": [
                link("x", "result", "wait", "value"),
                link("wait", "output", "shout", "values_#_v"),
                link("shout", "output", "y", "value"),
            ],
        },
    )
    parent = create_graph(
        api,
        {
            "name": "Parent",
            "nodes": [
                node("word", "input", name="word"),
                node("sub", "agent_executor", graph_id=child["id"]),
                node("out", "output", name="result"),
            ],
            "links": [
                link("word", "result", "sub", "inputs_#_x"),
                link("sub", "y", "out", "value"),
            ],
        },
    )
    record = run_graph(api, parent, {"word": "hello"})
    assert record["status"] == "COMPLETED", record
    assert record["outputs"] == {"result": ["hello!"]}
    child_run = GraphExecution.objects.get(depth=1)
    listed = api.get(f"/api/executions/{child_run.pk}/").json()
    assert listed["parent_execution_id"] == record["id"] and listed["outputs"] == {"y": ["hello!"]}
    assert listed["stats"]["cost"] == 1
    assert record["stats"]["cost"] == 1  # the child's sleep, counted in the parent


def test_a_graph_that_runs_itself_stops_at_the_depth_limit(api, user, worker):
    graph = create_graph(api, {"name": "Self", "nodes": [node("o", "output", name="o", value=1)]})
    document = {
        "name": "Self",
        "nodes": [node("me", "agent_executor", graph_id=graph["id"])],
    }
    assert api.put(f"/api/graphs/{graph['id']}/", document, format="json").status_code == 200
    eid = execute(api, graph)
    record = wait_for_run(api, eid, timeout=60)
    assert record["status"] == "FAILED"  # ENGINE_MAX_DEPTH is 3 for the tests (pyproject)
    assert GraphExecution.objects.order_by("-depth").first().depth == 3
    deepest = GraphExecution.objects.get(depth=3)
    assert "depth limit of 3" in NodeExecution.objects.get(execution=deepest).error


# --- retention ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_retention_deletes_old_finished_runs_and_keeps_the_ledger(api, user, settings):
    from datetime import timedelta

    from django.utils import timezone

    from graphs.services import graph_create

    from .documents import greeting

    settings.EXECUTION_RETENTION_DAYS = 30
    version = graph_create(owner=user, document=greeting())
    old, recent, running = (
        GraphExecution.objects.create(
            graph=version.graph, graph_version=version, user=user, status=status, ended_at=ended
        )
        for status, ended in [
            ("COMPLETED", timezone.now() - timedelta(days=40)),
            ("FAILED", timezone.now() - timedelta(days=2)),
            ("RUNNING", None),
        ]
    )
    NodeExecution.objects.create(execution=old, node_id="greet", block="text_template")
    ledger_apply(user_id=user.pk, amount=-1, type="USAGE", reference="old-run", execution_id=old.pk)
    result = recovery.retention()
    assert result["executions"] == 1
    assert set(GraphExecution.objects.values_list("pk", flat=True)) == {recent.pk, running.pk}
    assert not NodeExecution.objects.filter(execution_id=old.pk).exists()
    assert CreditTransaction.objects.filter(execution_id=old.pk).exists()
