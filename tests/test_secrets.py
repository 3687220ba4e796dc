"""Secrets stay with their owner, end to end: a credential handed to a sub-graph, the
platform's LLM key, a credential header on a redirect, and what the web server and the
worker write to their logs. Real worker, real ASGI server, local servers that record what
reaches them."""

import json
import time
from urllib.parse import quote

import pytest
from django.contrib.auth import get_user_model
from websockets.sync.client import connect

from accounts.services import token_issue
from credentials.references import REDACTED
from executions.models import GraphExecution

from .conftest import ROOT, create_graph, wait_for_run
from .documents import link, node
from .recording import database_text, events_text

pytestmark = pytest.mark.integration

SECRET = "sk-live-3c9d2e7a1f6b4085"


def execute(api, graph, **body):
    response = api.post(f"/api/graphs/{graph['id']}/execute/", body, format="json")
    assert response.status_code == 201, response.json()
    return wait_for_run(api, response.json()["id"])


# --- a credential handed to a sub-graph ----------------------------------------------------


def child_graph(echo_url):
    """Uses the key it is given (as a header), echoes it back three ways."""
    return {
        "name": "Child uses the key",
        "nodes": [
            node("key", "input", name="key"),
            node("call", "http_request", url=echo_url),
            node("say", "text_template", format="the key is {{ k }}"),
            node("echo", "output", name="echo"),
            node("passed", "output", name="passed"),
            node("said", "output", name="said"),
        ],
        "links": [
            link("key", "result", "call", "headers_#_Authorization"),
            link("key", "result", "say", "values_#_k"),
            link("call", "response", "echo", "value"),
            link("key", "result", "passed", "value"),
            link("say", "output", "said", "value"),
        ],
    }


def parent_graph(child_id, hook_url):
    return {
        "name": "Parent hands a key on",
        "webhook_url": hook_url,
        "nodes": [
            node(
                "sub",
                "agent_executor",
                graph_id=child_id,
                inputs={"key": {"$credential": "BEARER"}},
            ),
            node("echo", "output", name="echo"),
            node("passed", "output", name="passed"),
            node("said", "output", name="said"),
        ],
        "links": [
            link("sub", "echo", "echo", "value"),
            link("sub", "passed", "passed", "value"),
            link("sub", "said", "said", "value"),
        ],
    }


def test_a_credential_handed_to_a_sub_graph_is_used_there_and_shown_nowhere(
    api, user, worker, recorder, asgi_server
):
    echo_url, echoed = recorder()
    hook_url, hooks = recorder()
    user.email = "owner@example.com"
    user.save()
    api.patch("/api/notifications/settings/", {"email_enabled": True}, format="json")
    api.post("/api/credentials/", {"name": "BEARER", "value": f"Bearer {SECRET}"}, format="json")
    child = create_graph(api, child_graph(echo_url))
    parent = create_graph(api, parent_graph(child["id"], hook_url))

    record = execute(api, parent)
    assert record["status"] == "COMPLETED", record
    # The child resolved the secret in its own worker and the server got it.
    assert [r["headers"]["authorization"] for r in echoed] == [f"Bearer {SECRET}"]
    outputs = record["outputs"]
    passed = outputs["passed"][0]  # the reference itself, sealed, never the value
    assert passed["$credential"] == "BEARER" and set(passed) == {"$credential", "$seal"}
    # A value that is exactly the secret goes on as its sealed reference; text that holds
    # it, redacted.
    assert outputs["echo"] == [{"you_sent": passed}]
    assert outputs["said"] == [f"the key is {REDACTED}"]
    child_run = GraphExecution.objects.get(parent_node_execution__execution_id=record["id"])
    assert child_run.inputs["key"] == passed  # sealed for the child, stored as such

    _wait_for_webhook(hooks)
    staff = get_user_model().objects.create_superuser("auditor", "a@example.com", "pw-123456")
    from django.test import Client

    admin = Client()
    admin.force_login(staff)
    key = token_issue(user=user)[0]
    web = _Web(asgi_server, key)
    places = {
        "execution API": web.get(f"/api/executions/{record['id']}/"),
        "child execution API": web.get(f"/api/executions/{child_run.pk}/"),
        "executions list": web.get("/api/executions/"),
        "notifications API": web.get("/api/notifications/"),
        "webhooks received": repr([h["body"] for h in hooks]),
        "events": events_text(record["id"]) + events_text(child_run.pk),
        "database": database_text(),
        "admin execution page": _admin_page(admin, "graphexecution", record["id"]),
        "admin child execution page": _admin_page(admin, "graphexecution", child_run.pk),
        "admin executions list": admin.get("/admin/executions/graphexecution/").content.decode(),
        "worker log": (ROOT / ".local" / "test-worker.log").read_text(errors="replace"),
        "web server log": (ROOT / ".local" / "test-asgi.log").read_text(errors="replace"),
    }
    assert "owner@example.com" in places["worker log"]  # the e-mail was sent (console)
    for place, text in places.items():
        assert SECRET not in text, f"the secret appears in the {place}"


def _wait_for_webhook(hooks, timeout=30):
    deadline = time.monotonic() + timeout
    while not hooks:
        assert time.monotonic() < deadline, "no webhook arrived"
        time.sleep(0.1)


def _admin_page(client, model, pk):
    response = client.get(f"/admin/executions/{model}/{pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


class _Web:
    """Reads through the real ASGI server, so its log sees the requests too."""

    def __init__(self, host, key):
        self.host, self.key = host, key

    def get(self, path):
        import urllib.request

        request = urllib.request.Request(
            f"http://{self.host}{path}", headers={"Authorization": f"Token {self.key}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read().decode()


# --- the platform's key, and credential headers on redirects, in a real worker ------------


def test_the_platform_key_never_reaches_a_users_endpoint(api, worker, recorder):
    endpoint, seen = recorder()
    document = {
        "name": "Own endpoint",
        "nodes": [node("llm", "llm_text", prompt="hi", model="m", base_url=f"{endpoint}/v1")],
    }
    record = execute(api, create_graph(api, document))
    assert record["status"] == "FAILED"
    assert "must bring its own API key" in record["node_executions"][0]["error"]
    assert seen == []


def test_a_credential_header_does_not_follow_a_redirect_to_another_origin(api, worker, recorder):
    second, second_seen = recorder()
    first, first_seen = recorder()
    api.post("/api/credentials/", {"name": "TOKEN", "value": SECRET}, format="json")
    document = {
        "name": "Redirected",
        "nodes": [
            node(
                "call",
                "http_request",
                url=f"{first}/redirect-to/{second}/landing",
                headers={"X-Auth-Token": {"$credential": "TOKEN"}, "X-Trace": "t-1"},
            ),
        ],
    }
    record = execute(api, create_graph(api, document))
    assert record["status"] == "COMPLETED", record
    assert first_seen[0]["headers"]["x-auth-token"] == SECRET
    landed = second_seen[0]["headers"]
    assert landed["x-trace"] == "t-1" and "x-auth-token" not in landed
    assert SECRET not in repr(landed)


# --- logs ----------------------------------------------------------------------------------


def test_no_token_or_key_reaches_a_log_line(api, user, worker, asgi_server, recorder):
    """A WebSocket session opened with ?token= and with ?ticket=, and an http_request with a
    key in its query string: neither the web server's access log nor the worker's log
    shows any of them."""
    key = token_issue(user=user)[0]
    ticket = api.post("/api/auth/ws-ticket/").json()["ticket"]
    for query in (f"token={quote(key)}", f"ticket={quote(ticket)}"):
        with connect(f"ws://{asgi_server}/ws/executions/?{query}", open_timeout=10) as ws:
            ws.send(json.dumps({"action": "ping"}))
            assert json.loads(ws.recv(timeout=10))["type"] == "pong"
    import urllib.request

    with urllib.request.urlopen(f"http://{asgi_server}/health?token={key}", timeout=10):
        pass

    base, seen = recorder()
    query_key = "qk-0d5f7e2b9a4c6e81"
    document = {
        "name": "Key in the query",
        "nodes": [node("call", "http_request", url=f"{base}/data?api_key={query_key}&page=2")],
    }
    record = execute(api, create_graph(api, document))
    assert record["status"] == "COMPLETED" and seen[0]["path"].endswith(query_key + "&page=2")

    time.sleep(0.5)  # the server writes its access lines as requests end
    web_log = (ROOT / ".local" / "test-asgi.log").read_text(errors="replace")
    worker_log = (ROOT / ".local" / "test-worker.log").read_text(errors="replace")
    assert "/ws/executions/?token=[redacted]" in web_log  # the line is there, scrubbed
    assert "/health?token=[redacted]" in web_log
    for text, where in ((web_log, "web server log"), (worker_log, "worker log")):
        for secret in (key, ticket, query_key):
            assert secret not in text, f"{secret[:6]}... appears in the {where}"
