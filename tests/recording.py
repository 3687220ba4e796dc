"""Helpers for tests that look for secrets: local HTTP servers that record what reaches
them, and every place a run leaves text behind (its event stream, the database)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import redis
from django.conf import settings
from django.db import connection

from executions.events import stream_key


class Recorder(BaseHTTPRequestHandler):
    """Records every request (path, headers with lower-case names, body). Answers by path:
    /redirect-to/<url> redirects there (307 keeps the method), /big streams 1 MiB without
    a declared length, /unavailable answers 503, anything else echoes the Authorization
    header it got (a careless API would) as JSON."""

    def log_message(self, *args):
        pass

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.seen.append({"path": self.path, "headers": headers, "body": body})
        if self.path.startswith("/redirect-to/"):
            self.send_response(307)
            self.send_header("Location", self.path.removeprefix("/redirect-to/"))
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/big":
            self._stream_a_mebibyte()
        elif self.path == "/unavailable":
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            data = json.dumps({"you_sent": headers.get("authorization", "")}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    def _stream_a_mebibyte(self):
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"x" * 65536
        try:
            for _ in range(16):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client stopped reading: that is the point

    do_GET = do_POST = do_PUT = do_PATCH = _answer


class Recorders:
    """start() -> (base URL, list of the requests it received); close() stops them all."""

    def __init__(self):
        self.servers: list[ThreadingHTTPServer] = []

    def start(self):
        server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        server.seen = []
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", server.seen

    def close(self):
        for server in self.servers:
            server.shutdown()
            server.server_close()


def events_text(run_id) -> str:
    """Every event of a run's stream in Redis, as JSON text."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        return json.dumps(
            [
                {k.decode(): v.decode(errors="replace") for k, v in fields.items()}
                for _, fields in client.xrange(stream_key(run_id))
            ]
        )
    finally:
        client.close()


def database_text() -> str:
    """Every row of every table of the apps a run writes to, as JSON text."""
    apps = ("executions", "credits", "notifications", "credentials", "graphs", "knox")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = 'public' AND split_part(table_name, '_', 1) = ANY(%s)",
            [list(apps)],
        )
        tables = [row[0] for row in cursor.fetchall()]
        assert "executions_nodeexecution" in tables and "notifications_webhookattempt" in tables
        texts = []
        for table in tables:
            cursor.execute(
                f"SELECT coalesce(string_agg(row_to_json(t)::text, ' '), '') FROM \"{table}\" t"
            )
            texts.append(cursor.fetchone()[0])
        return " ".join(texts)
