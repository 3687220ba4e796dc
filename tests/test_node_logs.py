"""Per-node logs (issue 22), on a real worker: what a block logs (RunContext.log) and what
the engine says (retries, waits) is kept per node execution with its secrets redacted,
capped, served by the API to the run's owner only, and sent live as `log` events."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import override_settings

from executions.models import NodeExecution

from .conftest import create_graph, wait_for_run
from .documents import node
from .test_control import execute
from .test_live import live, token  # noqa: F401  (the live stream, fixtures)

pytestmark = pytest.mark.integration
SECRET = "sk-log-secret-1234"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        status = 503 if self.path.startswith("/down") else 200
        body = b'{"ok": true}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def web():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def logs(api, run_id, node_id):
    (ne,) = NodeExecution.objects.filter(execution_id=run_id, node_id=node_id)
    answer = api.get(f"/api/executions/{run_id}/nodes/{ne.pk}/logs/")
    assert answer.status_code == 200, answer.json()
    return [(line["level"], line["message"]) for line in answer.json()["results"]], ne.pk


def test_blocks_and_the_engine_log_per_node(api, worker, web, other_api):
    api.post("/api/credentials/", {"name": "KEY", "value": SECRET}, format="json")
    document = {
        "name": "Logs",
        "nodes": [
            node("ok", "http_request", url=f"{web}/ok", headers={"X-Key": {"$credential": "KEY"}}),
            node("down", "http_request", url=f"{web}/down"),
            node("bad", "calculator", operation="divide", a=1, b=0),
            node("nap", "sleep", seconds=0),
        ],
    }
    run_id = execute(api, create_graph(api, document))
    record = wait_for_run(api, run_id)
    lines, ok_id = logs(api, run_id, "ok")
    assert lines == [("info", f"GET {web}/ok answered 200 (12 bytes)")]
    lines, _ = logs(api, run_id, "down")
    retries = [m for level, m in lines if level == "warning" and "retrying in" in m]
    assert len(retries) == 3 and retries[0].startswith("attempt 1 failed; retrying in")
    assert lines[-1] == ("info", f"GET {web}/down answered 503 (12 bytes)")  # the last try
    lines, _ = logs(api, run_id, "bad")
    assert lines == [("error", "division by zero")]
    assert logs(api, run_id, "nap")[0] == []
    assert SECRET not in str(record)
    assert other_api.get(f"/api/executions/{run_id}/nodes/{ok_id}/logs/").status_code == 404
    assert api.get(f"/api/executions/{run_id}/nodes/999999999/logs/").status_code == 404


@override_settings(ENGINE_MAX_NODE_LOG_LINES=2)
def test_the_cap_keeps_the_first_lines_and_says_how_many_went(user, settings):
    from blocks.base import RunContext
    from executions.node_logs import NodeLog, log_lines_of
    from executions.runs import execution_create
    from graphs.services import graph_create

    from .documents import greeting

    graph = graph_create(owner=user, document=greeting()).graph
    run = execution_create(user=user, graph=graph, inputs={})
    ne = NodeExecution.objects.filter(execution=run).first()
    sink = NodeLog(run.pk, ne.pk, ne.node_id, secrets=[SECRET])
    ctx = RunContext(user.pk, str(run.pk), ne.node_id, ne.pk, logger=sink.write)
    for n in range(5):
        ctx.log(f"line {n} with {SECRET}")
    sink.flush()
    kept = [line.message for line in log_lines_of(ne.pk)]
    assert kept[:2] == ["line 0 with [redacted]", "line 1 with [redacted]"]
    assert kept[2].startswith("3 more line(s) not kept: the limit is 2")


def test_the_admin_opens_a_node_executions_log(api, user, client):
    from django.contrib.auth import get_user_model

    from executions.models import NodeLogLine
    from executions.runs import execution_create
    from graphs.services import graph_create

    from .documents import greeting

    run = execution_create(user=user, graph=graph_create(owner=user, document=greeting()).graph,
                           inputs={})  # fmt: skip
    ne = NodeExecution.objects.filter(execution=run).first()
    NodeLogLine.objects.create(node_execution=ne, level="info", message="hello from the node")
    client.force_login(get_user_model().objects.create_superuser("boss", "b@x.org", "pw"))
    page = client.get(f"/admin/executions/nodelogline/?node_execution__id__exact={ne.pk}")
    assert page.status_code == 200 and "hello from the node" in page.content.decode()
    run_page = client.get(f"/admin/executions/graphexecution/{run.pk}/change/").content.decode()
    assert f"node_execution__id__exact={ne.pk}" in run_page


def test_log_lines_stream_live_between_a_nodes_start_and_end(api, web, live):  # noqa: F811
    from .test_live import start_with_graph_subscription, until_terminal

    ws = live()
    document = {"name": "Live log", "nodes": [node("ok", "http_request", url=f"{web}/ok")]}
    run_id = start_with_graph_subscription(api, ws, document)
    messages = until_terminal(ws, run_id)
    kinds = [
        (m["type"], m.get("status"), m.get("level")) for m in messages if m["type"] != "snapshot"
    ]
    log_at = kinds.index(("log", None, "info"))
    assert ("node", "RUNNING", None) in kinds[:log_at] and ("node", "COMPLETED", None) in kinds[
        log_at:
    ]
    (line,) = [m for m in messages if m["type"] == "log"]
    assert line["message"] == f"GET {web}/ok answered 200 (12 bytes)" and "T" in line["at"]
