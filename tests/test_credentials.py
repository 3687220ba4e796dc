"""Credentials: write-only, encrypted at rest, resolved only in the worker, redacted from
everything a run leaves behind."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from credentials.crypto import decrypt, forget_keys
from credentials.models import Credential
from credentials.references import REDACTED, redact, substitute
from executions.models import NodeExecution

from .conftest import ROOT, create_graph, nodes_of, wait_for_run
from .documents import link, node
from .recording import database_text, events_text

SECRET = "sk-live-7f3a9c1e5b2d4068"


# --- plain functions --------------------------------------------------------------------------


def test_only_references_the_author_wrote_are_resolved():
    authored = {"headers": {"Authorization": {"$credential": "API"}}, "url": "x"}
    linked = {"headers": {"Authorization": {"$credential": "OTHER"}}, "url": "x"}
    lookup = {"API": "one", "OTHER": "two"}.__getitem__
    assert substitute(authored, authored, lookup)["headers"] == {"Authorization": "one"}
    # A value that came over a link and only looks like a reference stays as it is.
    assert substitute(authored, linked, lookup) == linked
    assert substitute({"url": "x"}, {"url": {"$credential": "API"}}, lookup) == {
        "url": {"$credential": "API"}
    }


def test_redaction_reaches_into_nested_values_and_keys():
    value = [("response", {"echo": f"Bearer {SECRET}", SECRET: [SECRET]})]
    assert redact(value, [SECRET]) == [
        ("response", {"echo": f"Bearer {REDACTED}", REDACTED: [REDACTED]})
    ]


# --- the API ----------------------------------------------------------------------------------


def test_values_are_write_only_and_encrypted_at_rest(api, user):
    created = api.post("/api/credentials/", {"name": "API", "value": SECRET}, format="json")
    assert created.status_code == 201 and SECRET not in created.content.decode()
    assert set(created.json()) == {"name", "created_at", "last_used_at"}
    listed = api.get("/api/credentials/")
    assert [c["name"] for c in listed.json()["results"]] == ["API"]
    assert SECRET not in listed.content.decode()

    row = Credential.objects.get(owner=user, name="API")
    assert SECRET not in row.ciphertext and decrypt(row.ciphertext) == SECRET

    again = api.post("/api/credentials/", {"name": "API", "value": "x"}, format="json")
    assert again.status_code == 409
    assert api.post("/api/credentials/", {"name": "bad name!", "value": "x"}).status_code in (
        400,
        415,
    )
    assert api.post("/api/credentials/", {"name": "n"}, format="json").status_code == 400
    assert api.delete("/api/credentials/API/").status_code == 204
    assert api.delete("/api/credentials/API/").status_code == 404


def test_other_users_credentials_are_invisible(api, other_api):
    api.post("/api/credentials/", {"name": "API", "value": SECRET}, format="json")
    assert other_api.get("/api/credentials/").json()["count"] == 0
    assert other_api.delete("/api/credentials/API/").status_code == 404


def test_rotation_re_encrypts_with_the_new_first_key(api, user, settings):
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    api.post("/api/credentials/", {"name": "API", "value": SECRET}, format="json")
    old_key = settings.CREDENTIALS_ENCRYPTION_KEYS[0]
    new_key = Fernet.generate_key().decode()
    settings.CREDENTIALS_ENCRYPTION_KEYS = [new_key, old_key]
    forget_keys()
    try:
        call_command("rotate_credentials")
        settings.CREDENTIALS_ENCRYPTION_KEYS = [new_key]  # the old key is gone now
        forget_keys()
        assert decrypt(Credential.objects.get(owner=user).ciphertext) == SECRET
    finally:
        forget_keys()


# --- in a run ---------------------------------------------------------------------------------


class _EchoAuth(BaseHTTPRequestHandler):
    """Answers 200 only to the right bearer token, and echoes the header back (a careless
    API would): the run must still not show the secret anywhere."""

    seen: list[str] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        given = self.headers.get("Authorization", "")
        _EchoAuth.seen.append(given)
        ok = given == f"Bearer {SECRET}"
        body = json.dumps({"you_sent": given, "ok": ok}).encode()
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def auth_server():
    _EchoAuth.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoAuth)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def authorised_call(url):
    return {
        "name": "Authorised call",
        "nodes": [
            node("start", "input", name="go", value=True),
            node(
                "call",
                "http_request",
                url=url,
                headers={"Authorization": {"$credential": "BEARER"}},
            ),
            node("out", "output", name="answer"),
        ],
        "links": [
            link("start", "result", "call", "body"),
            link("call", "response", "out", "value"),
        ],
    }


@pytest.mark.integration
def test_a_credential_reaches_the_server_and_nowhere_else(api, user, worker, auth_server):
    api.post("/api/credentials/", {"name": "BEARER", "value": f"Bearer {SECRET}"}, format="json")
    graph = create_graph(api, authorised_call(auth_server))
    run_id = api.post(f"/api/graphs/{graph['id']}/execute/", {}, format="json").json()["id"]
    record = wait_for_run(api, run_id)
    assert record["status"] == "COMPLETED", record
    assert _EchoAuth.seen == [f"Bearer {SECRET}"]  # the server got the real value
    assert record["outputs"]["answer"] == [{"you_sent": REDACTED, "ok": True}]
    call = nodes_of(record, "call")[0]
    assert call["input_data"]["headers"] == {"Authorization": {"$credential": "BEARER"}}

    places = {
        "execution API": api.get(f"/api/executions/{run_id}/").content.decode(),
        "executions list": api.get("/api/executions/").content.decode(),
        "graph API": api.get(f"/api/graphs/{graph['id']}/").content.decode(),
        "credentials API": api.get("/api/credentials/").content.decode(),
        "node rows": json.dumps(
            list(NodeExecution.objects.values("input_data", "output_data", "error"))
        ),
        "events": events_text(run_id),
        "worker log": (ROOT / ".local" / "test-worker.log").read_text(errors="replace"),
        "database dump": database_text(),
    }
    for place, text in places.items():
        assert SECRET not in text, f"the secret appears in the {place}"
    assert Credential.objects.get(owner=user).last_used_at is not None


@pytest.mark.integration
def test_a_missing_credential_is_refused_before_the_run_starts(api, worker, auth_server):
    from executions.models import GraphExecution

    graph = create_graph(api, authorised_call(auth_server))
    refused = api.post(f"/api/graphs/{graph['id']}/execute/", {}, format="json")
    assert refused.status_code == 400
    assert "no stored credential named 'BEARER'" in refused.json()["detail"]
    assert not GraphExecution.objects.exists() and _EchoAuth.seen == []


@pytest.mark.integration
def test_a_credential_deleted_while_its_run_waits_fails_the_node_with_its_name(
    api, worker, auth_server
):
    api.post("/api/credentials/", {"name": "BEARER", "value": "Bearer x"}, format="json")
    document = authorised_call(auth_server)
    document["nodes"].insert(0, node("nap", "sleep", seconds=1, value=5))
    document["links"] = [*document["links"], link("nap", "output", "call", "timeout")]
    graph = create_graph(api, document)
    run_id = api.post(f"/api/graphs/{graph['id']}/execute/", {}, format="json").json()["id"]
    assert api.delete("/api/credentials/BEARER/").status_code == 204
    record = wait_for_run(api, run_id)
    assert record["status"] == "FAILED"
    assert "credential 'BEARER' not found" in nodes_of(record, "call")[0]["error"]
    assert _EchoAuth.seen == []


@pytest.mark.integration
def test_a_reference_arriving_over_a_link_is_not_resolved(api, worker, auth_server):
    """A graph input (or a server's answer) shaped like a reference must not fetch a secret."""
    api.post("/api/credentials/", {"name": "BEARER", "value": f"Bearer {SECRET}"}, format="json")
    document = {
        "name": "Smuggled",
        "nodes": [
            node("start", "input", name="headers", value={}),
            node("call", "http_request", url=auth_server),
        ],
        "links": [link("start", "result", "call", "headers")],
    }
    graph = create_graph(api, document)
    smuggled = {"headers": {"Authorization": {"$credential": "BEARER"}}}
    run_id = api.post(
        f"/api/graphs/{graph['id']}/execute/", {"inputs": smuggled}, format="json"
    ).json()["id"]
    record = wait_for_run(api, run_id)
    assert record["status"] == "FAILED"  # a dict is not a header value
    assert SECRET not in json.dumps(record) and _EchoAuth.seen == []
