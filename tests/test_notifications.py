"""Notifications: listed, marked read, pushed on the live stream, e-mailed, and delivered to a
graph's webhook (signed, retried after a 500, every attempt recorded)."""

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import pytest
from django.core import mail
from websockets.sync.client import connect

from accounts.services import token_issue
from notifications import services
from notifications.models import Notification, WebhookDelivery

from .conftest import create_graph, run_graph, wait_for_run
from .documents import greeting, node


class _Hook(BaseHTTPRequestHandler):
    received: list = []
    fail_first = 1

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        ok = len(type(self).received) > type(self).fail_first
        self.send_response(200 if ok else 500)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def hook_server():
    _Hook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


@pytest.mark.integration
def test_ended_runs_notify_and_can_be_marked_read(api, user, worker):
    run_graph(api, greeting())
    run_graph(
        api, {"name": "Broken", "nodes": [node("d", "calculator", operation="divide", a=1, b=0)]}
    )
    page = api.get("/api/notifications/").json()
    assert [n["kind"] for n in page["results"]] == ["RUN_FAILED", "RUN_COMPLETED"]
    failed = page["results"][0]
    assert "division by zero" in failed["message"] and failed["data"]["status"] == "FAILED"
    assert api.get("/api/notifications/?unread=true").json()["count"] == 2
    marked = api.post("/api/notifications/read/", {"ids": [failed["id"]]}, format="json").json()
    assert marked == {"marked_read": 1}
    assert api.get("/api/notifications/?unread=true").json()["count"] == 1
    assert api.post("/api/notifications/read/", {}, format="json").json() == {"marked_read": 1}
    assert api.get("/api/notifications/?unread=true").json()["count"] == 0


@pytest.mark.integration
def test_webhook_is_signed_retried_after_a_500_and_recorded(api, user, worker, hook_server):
    document = {**greeting(), "webhook_url": hook_server}
    record = run_graph(api, document)
    assert api.get(f"/api/graphs/{record['graph_id']}/").json()["webhook_url"] == hook_server
    delivery = None
    deadline = time.monotonic() + 30
    while delivery is None or delivery.status == "PENDING":
        assert time.monotonic() < deadline, "webhook not delivered"
        time.sleep(0.1)
        delivery = WebhookDelivery.objects.filter(url=hook_server).first()
    assert delivery.status == "DELIVERED" and delivery.attempts == 2
    assert [t.status_code for t in delivery.tries.order_by("id")] == [500, 200]
    headers, body = _Hook.received[-1]
    secret = api.get("/api/notifications/settings/").json()["webhook_secret"]
    timestamp = headers["X-Agentgraph-Timestamp"]
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    assert headers["X-Agentgraph-Signature"] == "sha256=" + expected.hexdigest()
    sent = json.loads(body)
    assert sent["kind"] == "RUN_COMPLETED" and sent["data"]["execution_id"] == record["id"]
    assert sent["data"]["outputs"] == {"greeting": ["Hello world!"]}


@pytest.mark.integration
def test_notifications_are_pushed_on_the_users_stream(api, user, worker, asgi_server):
    token = token_issue(user=user)[0]
    url = f"ws://{asgi_server}/ws/executions/?token={quote(token)}"
    with connect(url, open_timeout=10) as ws:
        ws.send(json.dumps({"action": "ping"}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "pong"}  # connected and grouped
        graph = create_graph(api, greeting())
        eid = api.post(f"/api/graphs/{graph['id']}/execute/", {}, format="json").json()["id"]
        wait_for_run(api, eid)
        deadline = time.monotonic() + 15
        while True:
            message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message["type"] == "notification":
                break
        assert message["kind"] == "RUN_COMPLETED" and message["data"]["execution_id"] == eid


def _next_notification(ws, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if message["type"] == "notification":
            return message


@pytest.mark.integration
def test_a_users_notifications_reach_only_that_users_sockets(
    api, user, other_api, other_user, worker, asgi_server
):
    """All users' notifications share one stream that every server process reads: each goes
    to the sockets of its own user, and no other."""
    urls = [
        f"ws://{asgi_server}/ws/executions/?token={quote(token_issue(user=u)[0])}"
        for u in (user, other_user)
    ]
    with connect(urls[0], open_timeout=10) as mine, connect(urls[1], open_timeout=10) as theirs:
        for ws in (mine, theirs):
            ws.send(json.dumps({"action": "ping"}))
            assert json.loads(ws.recv(timeout=10)) == {"type": "pong"}
        my_run = run_graph(api, greeting())["id"]
        their_run = run_graph(other_api, greeting())["id"]
        assert _next_notification(mine, 15)["data"]["execution_id"] == my_run
        assert _next_notification(theirs, 15)["data"]["execution_id"] == their_run
        for ws in (mine, theirs):  # nothing more: neither got the other's
            with pytest.raises(TimeoutError):
                _next_notification(ws, 1.5)


@pytest.mark.django_db
def test_email_goes_out_only_when_the_user_opted_in(
    api, user, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(
        services, "_send", lambda name, pk: sent.append(pk) if name == services.SEND_EMAIL else None
    )
    user.email = "ada@example.com"
    user.save()
    with django_capture_on_commit_callbacks(execute=True):
        services.notify(user_id=user.pk, kind="RUN_COMPLETED", message="quiet")
    assert sent == []
    assert (
        api.patch("/api/notifications/settings/", {"email_enabled": True}, format="json").json()[
            "email_enabled"
        ]
        is True
    )
    with django_capture_on_commit_callbacks(execute=True):
        note = services.notify(user_id=user.pk, kind="RUN_COMPLETED", message="Run done.")
    assert sent == [note.pk]
    services.email(note.pk)
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ada@example.com"]
    assert "Run done." in mail.outbox[0].body


@pytest.mark.django_db
def test_settings_secrets_and_scoping(api, other_api, user):
    first = api.get("/api/notifications/settings/").json()
    assert first["email_enabled"] is False and len(first["webhook_secret"]) == 64
    rotated = api.post("/api/notifications/settings/rotate-secret/").json()["webhook_secret"]
    assert rotated != first["webhook_secret"]
    assert other_api.get("/api/notifications/settings/").json()["webhook_secret"] != rotated
    Notification.objects.create(user=user, kind="LOW_BALANCE", message="low")
    assert other_api.get("/api/notifications/").json()["count"] == 0
    assert api.post("/api/notifications/read/", {"ids": "x"}, format="json").status_code == 400
    bad = {**greeting(), "webhook_url": "ftp://example.com/x"}
    response = api.post("/api/graphs/", bad, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "webhook_url"


def test_signature_is_hmac_sha256_of_timestamp_and_body():
    signature = services.sign("secret", "1700000000", b'{"a":1}')
    expected = hmac.new(b"secret", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    assert signature == f"sha256={expected}"
