"""What a hostile client can send: nothing gives a 500, nothing holds the server.

Requests here go to the real ASGI server (uvicorn) over raw sockets where the point is what
arrives on the wire, and through the test client elsewhere."""

import contextlib
import json
import socket
import time

import pytest
from websockets.sync.client import connect

from accounts.services import token_issue
from executions.models import GraphExecution
from executions.runs import execution_create

from .conftest import create_graph, nodes_of, run_graph, wait_for_run
from .documents import greeting, node


def raw_request(host_port, head: bytes, body: bytes = b"", pause: float = 0.0) -> tuple[int, float]:
    """Send `head` (and `body`), return the status line's code and the seconds it took."""
    host, port = host_port.rsplit(":", 1)
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(head)
        if body:
            # The server may answer and close before it takes it all.
            with contextlib.suppress(OSError):
                sock.sendall(body)
        if pause:
            time.sleep(pause)
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    status = int(reply.split(b" ", 2)[1]) if reply else 0
    return status, time.monotonic() - started


def post_head(path, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: test", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.integration
def test_a_body_announced_too_large_is_refused_before_it_is_sent(asgi_server, transactional_db):
    head = post_head(
        "/api/graphs/",
        {"Content-Length": str(50 * 1024 * 1024), "Content-Type": "application/json"},
    )
    status, seconds = raw_request(asgi_server, head)  # not one byte of the body follows
    assert status == 413 and seconds < 2


@pytest.mark.integration
def test_a_streamed_body_is_cut_at_the_limit(asgi_server, transactional_db):
    head = post_head(
        "/api/graphs/", {"Transfer-Encoding": "chunked", "Content-Type": "application/json"}
    )
    chunk = b"x" * 1024 * 1024
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(8))  # 8 MiB > 5 MiB
    status, _ = raw_request(asgi_server, head, body)
    assert status == 413


@pytest.mark.integration
def test_a_trickling_body_is_refused_when_it_stops(asgi_server, transactional_db):
    head = post_head("/api/graphs/", {"Content-Length": "1000", "Content-Type": "application/json"})
    status, seconds = raw_request(asgi_server, head, b'{"name": ')  # then nothing more
    assert status == 408 and seconds < 10


@pytest.mark.integration
def test_a_bad_content_length_is_400(asgi_server, transactional_db):
    status, _ = raw_request(
        asgi_server, post_head("/api/graphs/", {"Content-Length": "\uff11\uff10"})
    )
    assert status == 400


@pytest.mark.django_db
@pytest.mark.parametrize("version", ["\u00b2", "\uff11", "0", "-1", "1.0", "9" * 400, "\x00"])
def test_odd_version_numbers_are_400(api, version):
    graph = create_graph(api, greeting())
    response = api.get(f"/api/graphs/{graph['id']}/", {"version": version})
    assert response.status_code in (400, 404), (version, response.status_code)


@pytest.mark.django_db
def test_a_nul_in_a_path_or_query_is_not_a_server_error(api):
    refused = api.delete("/api/credentials/%00/")
    assert refused.status_code == 400 and "NUL" in refused.json()["detail"]
    assert api.delete("/api/credentials/a%00b/").status_code == 400
    assert api.get("/api/executions/", {"status": "\x00"}).status_code == 400
    assert api.get("/api/executions/", {"graph": "\x00"}).status_code == 400


@pytest.mark.integration
def test_a_deeply_nested_websocket_message_gets_an_error_not_a_dropped_socket(
    asgi_server, user, transactional_db
):
    key = token_issue(user=user)[0]
    with connect(
        f"ws://{asgi_server}/ws/executions/", additional_headers={"Authorization": f"Token {key}"}
    ) as ws:
        ws.send("[" * 100_000 + "]" * 100_000)
        assert json.loads(ws.recv(timeout=10))["type"] == "error"
        for odd in (
            "null",
            "[]",
            '"text"',
            '{"action": ["subscribe"]}',
            '{"action": "subscribe", "execution_id": {"a": 1}}',
            '{"action": "subscribe", "execution_id": "\\u0000"}',
            '{"action": "subscribe", "graph_id": "' + "9" * 10_000 + '"}',
        ):
            ws.send(odd)
            assert json.loads(ws.recv(timeout=10))["type"] == "error", odd
        ws.send(json.dumps({"action": "ping"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "pong"


# --- requests with side effects are not repeated -------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize(
    "method, retry_unsafe, sent",
    [("POST", False, 1), ("POST", True, 4), ("PATCH", False, 1)],
)
def test_only_idempotent_requests_are_retried_after_a_5xx(
    api, worker, recorder, method, retry_unsafe, sent
):
    base, seen = recorder()
    document = {
        "name": "Pay once",
        "nodes": [
            node(
                "pay",
                "http_request",
                url=f"{base}/unavailable",
                method=method,
                body={"amount": 10},
                retry_unsafe=retry_unsafe,
            ),
        ],
    }
    record = run_graph(api, document)
    assert len(seen) == sent, seen
    assert nodes_of(record, "pay")[0]["attempts"] == sent


# --- resume ---------------------------------------------------------------------------------


@pytest.mark.integration
def test_a_run_cancelled_before_it_started_runs_from_the_start_when_resumed(
    api, user, worker, settings
):
    from executions.control import execution_cancel
    from graphs.models import Graph

    settings.ENGINE_MAX_RUNNING_PER_USER = 1
    graph = Graph.objects.get(pk=create_graph(api, greeting())["id"])
    holder = GraphExecution.objects.create(  # the user's one slot is taken
        graph=graph, graph_version=graph.versions.first(), user=user, status="RUNNING"
    )
    run = execution_create(user=user, graph=graph, inputs={"who": "Ada"})
    assert GraphExecution.objects.get(pk=run.pk).status == "QUEUED"  # waits for the slot
    execution_cancel(run.pk)  # cancelled before it started
    assert api.get(f"/api/executions/{run.pk}/").json()["status"] == "CANCELLED"
    GraphExecution.objects.filter(pk=holder.pk).update(status="CANCELLED")
    assert api.post(f"/api/executions/{run.pk}/resume/").status_code == 200
    record = wait_for_run(api, run.pk)
    assert record["status"] == "COMPLETED" and record["outputs"] == {"greeting": ["Hello Ada!"]}


@pytest.mark.django_db
def test_resuming_a_stopped_run_takes_a_slot_like_a_start(api, user, settings):
    from django.utils import timezone

    from graphs.models import Graph

    settings.ENGINE_MAX_RUNNING_PER_USER = 1
    graph = Graph.objects.get(pk=create_graph(api, greeting())["id"])
    version = graph.versions.get()
    started = {"graph": graph, "graph_version": version, "user": user, "started_at": timezone.now()}
    GraphExecution.objects.create(**started, status="RUNNING")
    stopped = GraphExecution.objects.create(**started, status="CANCELLED")
    refused = api.post(f"/api/executions/{stopped.pk}/resume/")
    assert refused.status_code == 409
    assert "ENGINE_MAX_RUNNING_PER_USER" in refused.json()["detail"]
    assert GraphExecution.objects.get(pk=stopped.pk).status == "CANCELLED"  # nothing changed


# --- the watchdog ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_one_run_whose_recovery_fails_does_not_stop_the_watchdog_for_the_others(
    api, user, monkeypatch
):
    from datetime import timedelta

    from django.utils import timezone

    from executions import recovery
    from executions.models import NodeExecution, Recovery
    from graphs.models import Graph

    graph = Graph.objects.get(pk=create_graph(api, greeting())["id"])
    long_ago = timezone.now() - timedelta(hours=1)
    runs = [
        GraphExecution.objects.create(
            graph=graph,
            graph_version=graph.versions.get(),
            user=user,
            status="RUNNING",
            started_at=long_ago,
            progressed_at=long_ago,
        )
        for _ in range(2)
    ]
    for run in runs:
        NodeExecution.objects.create(
            execution=run, node_id="who", block="input", status="QUEUED", queued_at=long_ago
        )
    broken, healthy = runs
    real = recovery._redispatch

    def redispatch(run, since):
        if run.pk == broken.pk:
            raise RuntimeError("this run's rows are in a bad way")
        return real(run, since)

    monkeypatch.setattr(recovery, "_redispatch", redispatch)
    counts = recovery.watchdog()
    assert counts["failed"] == 1 and counts["queued"] == 1
    assert Recovery.objects.filter(execution=healthy, kind="queued").exists()
    failed = Recovery.objects.get(execution=broken, kind="failed")
    assert "bad way" in failed.detail


# --- notifications are never lost ----------------------------------------------------------


@pytest.mark.django_db
def test_a_notification_that_cannot_be_handed_on_stays_owed_and_is_sent_later(
    user, monkeypatch, django_capture_on_commit_callbacks, mailoutbox
):
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    from notifications import services
    from notifications.models import Notification, WebhookDelivery

    user.email = "owner@example.com"
    user.save()
    services.settings_of(user.pk).__class__.objects.filter(user=user).update(email_enabled=True)

    def broker_away(*args, **kwargs):
        raise ConnectionError("broker restarting")

    monkeypatch.setattr(services, "_send", broker_away)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        note = services.notify(
            user_id=user.pk,
            kind="RUN_COMPLETED",
            message="done",
            webhook_url="https://hooks.example.com/x",
        )
    # The caller went on; what could not be handed on is still owed.
    assert Notification.objects.get(pk=note.pk).email_pending
    assert WebhookDelivery.objects.get(notification=note).status == "PENDING"

    sent = []
    kinds = {services.SEND_EMAIL: "email", services.DELIVER_WEBHOOK: "hook"}
    monkeypatch.setattr(services, "_send", lambda name, pk: sent.append((kinds[name], pk)))
    assert services.redeliver() == {"emails": 0, "webhooks": 0}  # too recent to be lost
    long_ago = timezone.now() - timedelta(hours=1)
    Notification.objects.filter(pk=note.pk).update(created_at=long_ago)
    WebhookDelivery.objects.filter(notification=note).update(created_at=long_ago)
    assert services.redeliver() == {"emails": 1, "webhooks": 1}
    delivery = WebhookDelivery.objects.get(notification=note)
    assert sorted(sent) == [("email", note.pk), ("hook", delivery.pk)]

    services.email(note.pk)
    services.email(note.pk)  # a duplicate task sends nothing more
    assert [m.to for m in mailoutbox] == [["owner@example.com"]]
    assert not Notification.objects.get(pk=note.pk).email_pending


# --- Redis connections dropping --------------------------------------------------------------


def _drop_redis_clients():
    import redis
    from django.conf import settings

    admin = redis.Redis.from_url(settings.REDIS_URL)
    try:
        admin.client_kill_filter(_type="normal", skipme=True)
    finally:
        admin.close()


@pytest.mark.integration
def test_dropped_redis_connections_cost_a_retry_not_a_socket_or_a_500(
    api, user, worker, asgi_server
):
    from .test_live import receive, until_terminal

    key = token_issue(user=user)[0]
    graph = create_graph(api, greeting())
    header = {"Authorization": f"Token {key}"}
    # Warm every process's connections up, then drop them all.
    with connect(f"ws://{asgi_server}/ws/executions/", additional_headers=header) as ws:
        ws.send(json.dumps({"action": "ping"}))
        assert receive(ws)["type"] == "pong"
    run_graph(api, greeting())
    for _ in range(3):
        _drop_redis_clients()
        with connect(f"ws://{asgi_server}/ws/executions/", additional_headers=header) as ws:
            started = _web_post(asgi_server, key, f"/api/graphs/{graph['id']}/execute/", {})
            ws.send(json.dumps({"action": "subscribe", "execution_id": started["id"]}))
            messages = until_terminal(ws, started["id"])
            assert messages[-1]["status"] == "COMPLETED"


def _web_post(host, key, path, body):
    import urllib.request

    request = urllib.request.Request(
        f"http://{host}{path}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Token {key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=20) as response:
        assert response.status == 201
        return json.loads(response.read())


# --- every node has a bounded output ---------------------------------------------------------


def _claimed(user, block, input_data):
    from executions.claims import ClaimedNode
    from graphs.services import graph_create

    document = {
        "name": "One node",
        "nodes": [{"id": "n", "block": block, "input_default": input_data}],
    }
    from executions.models import NodeExecution
    from executions.runs import execution_create

    version = graph_create(owner=user, document=document)
    run = execution_create(user=user, graph=version.graph, inputs={})
    ne = NodeExecution.objects.get(execution=run)  # a real one: its log lines refer to it
    return ClaimedNode(
        ne.pk, run.pk, "n", block, input_data, version.pk, user.pk, version.graph_id, 1, 0,
        False, None,
    )  # fmt: skip


@pytest.mark.django_db
def test_a_node_that_yields_too_many_values_fails_and_passes_none_on(user, settings):
    from executions.block_runs import block_run

    settings.ENGINE_MAX_NODE_YIELDS = 10
    outcome = block_run(_claimed(user, "step_through_items", {"items": list(range(6))}))
    assert outcome.outputs == [] and "ENGINE_MAX_NODE_YIELDS" in outcome.error
    within = block_run(_claimed(user, "step_through_items", {"items": list(range(5))}))
    assert len(within.outputs) == 10 and within.error is None


@pytest.mark.django_db
def test_a_node_whose_outputs_are_too_large_fails_and_passes_none_on(user, settings):
    from executions.block_runs import block_run

    settings.ENGINE_MAX_NODE_OUTPUT_BYTES = 50_000
    big = ["x" * 1000] * 60  # 60 kB of items, each small
    outcome = block_run(_claimed(user, "step_through_items", {"items": big}))
    assert outcome.outputs == [] and "ENGINE_MAX_NODE_OUTPUT_BYTES" in outcome.error


@pytest.mark.django_db
def test_step_through_items_refuses_more_items_than_a_run_may_run(settings):
    from blocks.base import BlockError, RunContext
    from blocks.registry import get_block

    settings.ENGINE_MAX_NODE_EXECUTIONS = 100
    ctx = RunContext(1, "run", "n", 1)
    with pytest.raises(BlockError, match="ENGINE_MAX_NODE_EXECUTIONS"):
        next(get_block("step_through_items").execute({"items": list(range(101))}, ctx))


@pytest.mark.django_db
def test_a_run_whose_outputs_are_too_large_fails_with_the_setting_named(api, user, settings):
    from executions.finishing import execution_finish
    from executions.models import NodeExecution
    from graphs.models import Graph

    settings.ENGINE_MAX_RUN_OUTPUT_BYTES = 10_000
    graph = Graph.objects.get(pk=create_graph(api, greeting())["id"])
    run = GraphExecution.objects.create(
        graph=graph, graph_version=graph.versions.get(), user=user, status="RUNNING"
    )
    for _ in range(3):
        NodeExecution.objects.create(
            execution=run,
            node_id="out",
            block="output",
            status="COMPLETED",
            input_data={"name": "greeting"},
            output_data={"output": ["y" * 4000]},
        )
    assert execution_finish(run.pk, "COMPLETED")
    run.refresh_from_db()
    assert run.status == "FAILED" and "ENGINE_MAX_RUN_OUTPUT_BYTES" in run.error
    assert run.outputs == {}


# --- the execution record stays bounded ----------------------------------------------------


@pytest.mark.django_db
def test_a_huge_run_shows_a_page_of_nodes_and_previews_of_large_values(api, user, monkeypatch):
    from executions import selectors
    from executions.models import NodeExecution
    from graphs.models import Graph

    monkeypatch.setattr(selectors, "NODES_INLINE", 3)
    graph = Graph.objects.get(pk=create_graph(api, greeting())["id"])
    big = "z" * (selectors.VALUE_PREVIEW_CHARS + 10)
    run = GraphExecution.objects.create(
        graph=graph,
        graph_version=graph.versions.get(),
        user=user,
        status="COMPLETED",
        outputs={"greeting": [big]},
    )
    rows = [
        NodeExecution.objects.create(
            execution=run,
            node_id="greet",
            block="text_template",
            status="COMPLETED",
            input_data={"format": "x"},
            output_data={"output": [big if i == 1 else "small"]},
        )
        for i in range(7)
    ]
    record = api.get(f"/api/executions/{run.pk}/").json()
    assert [n["id"] for n in record["node_executions"]] == [r.pk for r in rows[:3]]
    assert record["node_executions"][0]["output_data"] == {"output": ["small"]}
    preview = record["node_executions"][1]["output_data"]
    assert preview["$chars"] > selectors.VALUE_PREVIEW_CHARS
    assert preview["$preview"].startswith('{"output"') and len(preview["$preview"]) <= 2000
    whole = api.get(preview["$href"]).json()
    assert whole["output_data"] == {"output": [big]}
    assert record["outputs"]["$href"].endswith("/outputs/")
    assert api.get(record["outputs"]["$href"]).json() == {"greeting": [big]}

    seen, url = [], record["node_executions_next"] + "&limit=2"
    for _ in range(5):
        page = api.get(url).json()
        assert page["count"] == 7
        seen += [n["id"] for n in page["results"]]
        url = page["next"]
        if url is None:
            break
    assert seen == [r.pk for r in rows[3:]]
    assert api.get(f"/api/executions/{run.pk}/nodes/", {"after": "\u00b2"}).status_code == 400
    assert api.get(f"/api/executions/{run.pk}/nodes/999999999/").status_code == 404


@pytest.mark.django_db
def test_another_users_nodes_and_outputs_are_404(api, other_api, user):
    from graphs.models import Graph

    graph = Graph.objects.get(pk=create_graph(api, greeting())["id"])
    run = GraphExecution.objects.create(
        graph=graph, graph_version=graph.versions.get(), user=user, status="COMPLETED"
    )
    for path in ("nodes/", "outputs/", "nodes/1/"):
        assert other_api.get(f"/api/executions/{run.pk}/{path}").status_code == 404


# --- free is not unlimited -------------------------------------------------------------------


@pytest.mark.django_db
def test_a_user_past_this_hours_worker_time_starts_no_node(api, user, settings):
    import time as clock

    from executions import quotas
    from executions.events import client
    from executions.models import NodeExecution
    from executions.node_runs import node_process
    from graphs.models import Graph

    settings.ENGINE_USER_WORKER_SECONDS_PER_HOUR = 60
    hour = quotas._hour(clock.time())
    client().delete(quotas._key(user.pk, hour))
    quotas._known.pop(user.pk, None)
    assert quotas.budget_left(user.pk) is None
    quotas.count(user.pk, 61.0)  # a minute's nodes, counted at once (past the batch size)
    refusal = quotas.budget_left(user.pk)
    assert "ENGINE_USER_WORKER_SECONDS_PER_HOUR" in refusal and "renews at" in refusal

    graph = Graph.objects.get(pk=create_graph(api, greeting())["id"])
    run = GraphExecution.objects.create(
        graph=graph, graph_version=graph.versions.get(), user=user, status="RUNNING", active_count=1
    )
    ne = NodeExecution.objects.create(
        execution=run,
        node_id="who",
        block="input",
        status="QUEUED",
        input_data={"name": "who", "value": 1},
    )
    node_process(ne.pk, take_over=False)
    ne.refresh_from_db()
    run.refresh_from_db()
    assert ne.status == "FAILED" and "ENGINE_USER_WORKER_SECONDS_PER_HOUR" in ne.error
    assert run.status == "FAILED"
    client().delete(quotas._key(user.pk, hour))


@pytest.mark.django_db
def test_a_node_timeout_above_the_cap_is_refused_at_save(api, settings):
    settings.ENGINE_NODE_TIMEOUT_CAP = 600
    document = greeting()
    document["nodes"][1]["timeout"] = 601
    response = api.post("/api/graphs/", document, format="json")
    assert response.status_code == 400
    assert "ENGINE_NODE_TIMEOUT_CAP" in response.json()["errors"][0]["message"]
