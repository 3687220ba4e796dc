"""file_store, file_read, http_request's multipart and send_email (issue 20), on a real
worker: files travel as references, the bytes stay in the store, a run reads only its
owner's files; e-mail goes to a real SMTP server on loopback (aiosmtpd)."""

import base64
import email
import socket
import threading
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from executions.models import NodeExecution
from files.models import StoredFile
from files.services import file_store

from .conftest import create_graph, wait_for_run
from .documents import link, node
from .test_control import execute

pytestmark = pytest.mark.integration


class _Handler(BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = b"%PDF-1.4 a small report"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        data = self.rfile.read(int(self.headers["Content-Length"]))
        _Handler.received.append((self.headers["Content-Type"], data))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


@pytest.fixture
def web():
    _Handler.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_files_are_stored_read_and_posted_as_references(api, user, worker, web):
    document = {
        "name": "Files",
        "nodes": [
            node("note", "file_store", text="héllo", name="note.txt"),
            node("pdf", "file_store", url=f"{web}/reports/q3.pdf"),
            node("read", "file_read"),
            node("read64", "file_read", **{"as": "base64"}),
            node("post", "http_request", url=f"{web}/upload", method="POST", body={"title": "Q3"}),
            node("text", "output", name="text"),
            node("b64", "output", name="b64"),
            node("ref", "output", name="ref"),
        ],
        "links": [
            link("note", "file", "read", "file"),
            link("pdf", "file", "read64", "file"),
            link("pdf", "file", "post", "files_#_report"),
            link("read", "content", "text", "value"),
            link("read64", "content", "b64", "value"),
            link("note", "file", "ref", "value"),
        ],
    }
    record = wait_for_run(api, execute(api, create_graph(api, document)))
    assert record["status"] == "COMPLETED", record
    assert record["outputs"]["text"] == ["héllo"]
    assert base64.b64decode(record["outputs"]["b64"][0]) == b"%PDF-1.4 a small report"
    reference = record["outputs"]["ref"][0]
    stored = StoredFile.objects.get(pk=reference["$file"])
    assert stored.owner_id == user.pk and str(stored.execution_id) == record["id"]
    pdf = StoredFile.objects.get(name="q3.pdf")
    assert pdf.content_type == "application/pdf"
    # The bytes went in the multipart request, not through node data.
    ((content_type, body),) = _Handler.received
    assert content_type.startswith("multipart/form-data")
    assert b'name="report"; filename="q3.pdf"' in body and b"%PDF-1.4 a small report" in body
    assert b'name="title"' in body and b"Q3" in body
    for execution in NodeExecution.objects.filter(execution_id=record["id"], node_id="post"):
        assert "PDF" not in str(execution.input_data)


def test_a_run_reads_only_its_owners_files(api, other_user, worker):
    theirs = file_store(owner_id=other_user.pk, name="secret.txt", content=b"theirs")
    document = {
        "name": "Snoop",
        "nodes": [node("read", "file_read", file={"$file": str(theirs.pk)})],
    }
    record = wait_for_run(api, execute(api, create_graph(api, document)))
    assert record["status"] == "FAILED"
    (read,) = record["node_executions"]
    assert f"no file {theirs.pk}" in read["error"] and "theirs" not in str(read["output_data"])


def test_an_uploaded_file_is_a_typed_graph_input(api, worker):
    from django.core.files.uploadedfile import SimpleUploadedFile

    made = api.post("/api/files/", {"file": SimpleUploadedFile("in.txt", b"uploaded")},
                    format="multipart").json()  # fmt: skip
    document = {
        "name": "Read an input",
        "nodes": [
            node("doc", "input", name="doc", type="file"),
            node("read", "file_read"),
            node("out", "output", name="content"),
        ],
        "links": [link("doc", "result", "read", "file"), link("read", "content", "out", "value")],
    }
    record = wait_for_run(api, execute(api, create_graph(api, document), {"doc": made["id"]}))
    assert record["outputs"] == {"content": ["uploaded"]}, record


@pytest.fixture
def smtp():
    """A real SMTP server on loopback (aiosmtpd) taking logins as user/secret."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    class Inbox:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append((envelope.rcpt_tos, envelope.content))
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"user" and auth_data.password == b"s3cret!"
        return AuthResult(success=ok, handled=False)  # the server answers 535 on failure

    inbox = Inbox()
    with socket.socket() as probe:  # aiosmtpd checks its own port once started: name one
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, authenticator=authenticator,
        auth_require_tls=False,
    )  # fmt: skip
    controller.start()
    yield inbox, port
    controller.stop()


def mail_graph(port, credential="smtp"):
    return {
        "name": "Mail",
        "nodes": [
            node("att", "file_store", text="a,b\n1,2\n", name="numbers.csv"),
            node(
                "send",
                "send_email",
                to=["ada@example.com"],
                cc="Alan <alan@example.com>",
                subject="Numbers",
                body="See attached.",
                html="<p>See attached.</p>",
                sender="bot@example.com",
                credentials={"$credential": credential},
            ),
        ],
        "links": [link("att", "file", "send", "attachments_$_0")],
    }


def test_send_email_sends_through_smtp_with_attachments(api, worker, smtp):
    inbox, port = smtp
    value = f"smtp://user:s3cret%21@127.0.0.1:{port}"
    made = api.post("/api/credentials/", {"name": "smtp", "value": value}, format="json")
    assert made.status_code == 201, made.json()
    record = wait_for_run(api, execute(api, create_graph(api, mail_graph(port))))
    assert record["status"] == "COMPLETED", record
    ((recipients, raw),) = inbox.messages
    assert sorted(recipients) == ["ada@example.com", "alan@example.com"]
    message = email.message_from_bytes(raw, policy=policy.default)
    assert message["Subject"] == "Numbers" and message["From"] == "bot@example.com"
    assert message.get_body(("plain",)).get_content().strip() == "See attached."
    assert message.get_body(("html",)).get_content().strip() == "<p>See attached.</p>"
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == "numbers.csv"
    assert attachment.get_content() == "a,b\n1,2\n"
    assert "s3cret" not in str(record)


def test_a_refused_smtp_login_fails_the_node_without_the_password(api, worker, smtp):
    inbox, port = smtp
    value = f"smtp://user:wrong-password@127.0.0.1:{port}"
    api.post("/api/credentials/", {"name": "smtp", "value": value}, format="json")
    record = wait_for_run(api, execute(api, create_graph(api, mail_graph(port))))
    assert record["status"] == "FAILED" and not inbox.messages
    send = next(n for n in record["node_executions"] if n["node_id"] == "send")
    assert "refused the login" in send["error"] and "wrong-password" not in str(record)


def test_the_operators_server_only_where_allowed_and_the_guard_for_users(smtp, settings):
    from blocks.base import BlockError, RunContext
    from blocks.registry import get_block

    inbox, port = smtp
    ctx = RunContext(user_id=1, graph_execution_id="run", node_id="n", node_execution_id=7)
    inputs = {"to": "ada@example.com", "subject": "Hi", "body": "Hello"}
    with pytest.raises(BlockError, match="no SMTP server: store yours"):
        list(get_block("send_email").execute(inputs, ctx))
    settings.SEND_EMAIL_OPERATOR_SMTP = True
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = "user", "s3cret!"
    settings.OUTBOUND_ALLOW_LOOPBACK = False  # the operator's own server is let through
    assert next(iter(get_block("send_email").execute(inputs, ctx))) == ("status", "sent")
    assert inbox.messages[0][0] == ["ada@example.com"]
    user_server = {**inputs, "credentials": f"smtp://user:s3cret%21@127.0.0.1:{port}"}
    with pytest.raises(BlockError, match="loopback addresses are not allowed"):
        list(get_block("send_email").execute(user_server, ctx))
    with pytest.raises(BlockError, match="is not an e-mail address"):
        list(get_block("send_email").execute({**inputs, "to": "ada\r\nBcc: x@y.z"}, ctx))
