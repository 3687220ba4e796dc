"""Each block of the catalogue, run directly (no engine), and http_request against a real
HTTP server on loopback."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import override_settings

from blocks.base import BlockError, RunContext
from blocks.registry import get_block

CTX = RunContext(user_id=1, graph_execution_id="e", node_id="n", node_execution_id=1)


def run(block, **inputs):
    return list(get_block(block).execute(inputs, CTX))


def test_input_yields_only_a_value():
    assert run("input", name="x", value=3) == [("result", 3)]
    assert run("input", name="x") == []


def test_output_formats_with_a_template():
    assert run("output", name="o", value=2) == [("output", 2)]
    assert run("output", name="o", value="Ada", format="<{{ value }}>") == [("output", "<Ada>")]


def test_store_value_prefers_data():
    assert run("store_value", input=1) == [("output", 1)]
    assert run("store_value", input=1, data="kept") == [("output", "kept")]


def test_text_template_renders_values():
    assert run("text_template", format="{{ a }}-{{ b }}", values={"a": 1, "b": "x"}) == [
        ("output", "1-x")
    ]


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",  # no way out of the sandbox
        "{{ 'a' * 10000000 }}",  # no memory bombs
        "{{ 2 ** 100000 }}",
        "{{ ((10**1000)**1000)**10 }}",  # each power small, the number is not
        "{% set ns = namespace(x=3) %}{% for i in range(40) %}{% set ns.x = ns.x * ns.x %}"
        "{% endfor %}",
        "{{ 'x'.center(10**9) }}",  # padding: a gigabyte from a few characters
        "{{ 'x'.ljust(999999999) }}",
        "{{ 'x'|center(999999999) }}",
        "{{ '%0999999999d' % 1 }}",
        "{{ '%0999999999d'|format(1) }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ '{:>{w}}'.format(1, w=999999999) }}",
        "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}"
        "{% endfor %}",
        "{% for i in range(100000) %}{{ 'twenty characters...' }}{% endfor %}",  # too long
        "{{ missing }}",  # undefined names are errors, not silent blanks
        "{% for %}",  # syntax errors are reported
    ],
)
def test_text_template_refuses_unsafe_or_broken_templates(template):
    with pytest.raises(BlockError):
        run("text_template", format=template)


@pytest.mark.parametrize(
    "op, a, b, expected",
    [
        ("==", 1, 1, True),
        ("!=", 1, 1, False),
        (">", 2, 1, True),
        ("<", 2, 1, False),
        (">=", 1, 1, True),
        ("<=", 2, 1, False),
        ("==", "x", "x", True),
    ],
)
def test_condition_operators(op, a, b, expected):
    out = run("condition", value1=a, operator=op, value2=b)
    assert out[0] == ("result", expected)
    assert out[1] == ("yes_output" if expected else "no_output", a)


def test_condition_branch_values_and_errors():
    assert run("condition", value1=1, value2=1, yes_value="Y")[1] == ("yes_output", "Y")
    assert run("condition", value1=1, value2=2, no_value="N")[1] == ("no_output", "N")
    with pytest.raises(BlockError, match="cannot compare"):
        run("condition", value1=1, operator="<", value2="a")


def test_step_through_items_lists_and_dicts():
    assert run("step_through_items", items=["a", "b"]) == [
        ("item", "a"),
        ("key", 0),
        ("item", "b"),
        ("key", 1),
    ]
    assert run("step_through_items", items={"k": 1}) == [("item", 1), ("key", "k")]


@pytest.mark.parametrize(
    "operation, a, b, expected",
    [
        ("add", 1, 2, 3),
        ("subtract", 1, 2, -1),
        ("multiply", 3, 4, 12),
        ("divide", 1, 4, 0.25),
        ("power", 2, 10, 1024),
    ],
)
def test_calculator(operation, a, b, expected):
    assert run("calculator", operation=operation, a=a, b=b) == [("result", expected)]


def test_calculator_errors_and_rounding():
    assert run("calculator", operation="divide", a=7, b=2, round_result=True) == [("result", 4)]
    with pytest.raises(BlockError, match="division by zero"):
        run("calculator", operation="divide", a=1, b=0)
    with pytest.raises(BlockError):
        run("calculator", operation="power", a=10, b=400)
    with pytest.raises(BlockError, match="invalid input"):
        run("calculator", operation="add", a="x", b=1)


@override_settings(BLOCK_SLEEP_MAX_SECONDS=1)
def test_sleep_passes_its_value_and_respects_the_cap():
    assert run("sleep", seconds=0, value=5) == [("output", 5)]
    with pytest.raises(BlockError, match="over the limit"):
        run("sleep", seconds=2)
    with pytest.raises(BlockError, match="invalid input"):
        run("sleep", seconds=-1)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, status, body, content_type="application/json", headers=()):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        routes = {
            "/ok": (200, json.dumps({"hello": "world"})),
            "/text": (200, "plain words"),
            "/missing": (404, json.dumps({"error": "nope"})),
            "/broken": (503, "down"),
            "/big": (200, "x" * 5000),
        }
        if self.path == "/redirect":
            return self._send(302, "", headers=[("Location", "/ok")])
        if self.path == "/to-private":
            return self._send(302, "", headers=[("Location", "http://10.1.2.3/secret")])
        status, body = routes.get(self.path, (404, "{}"))
        self._send(status, body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        received = json.loads(self.rfile.read(length) or b"null")
        self._send(201, json.dumps({"got": received, "auth": self.headers.get("X-Key")}))


@pytest.fixture(scope="module")
def http_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@override_settings(OUTBOUND_ALLOW_LOOPBACK=True)
def test_http_request_sorts_responses_by_status(http_server):
    assert run("http_request", url=f"{http_server}/ok") == [("response", {"hello": "world"})]
    assert run("http_request", url=f"{http_server}/text") == [("response", "plain words")]
    assert run("http_request", url=f"{http_server}/missing") == [
        ("client_error", {"error": "nope"})
    ]
    assert run("http_request", url=f"{http_server}/broken") == [("server_error", "down")]
    assert run("http_request", url=f"{http_server}/redirect") == [("response", {"hello": "world"})]
    posted = run(
        "http_request",
        url=f"{http_server}/echo",
        method="POST",
        body={"a": [1]},
        headers={"X-Key": "k"},
    )
    assert posted == [("response", {"got": {"a": [1]}, "auth": "k"})]


@override_settings(OUTBOUND_ALLOW_LOOPBACK=True, HTTP_BLOCK_MAX_RESPONSE_BYTES=1000)
def test_http_request_caps_the_response_size(http_server):
    with pytest.raises(BlockError, match="larger than"):
        run("http_request", url=f"{http_server}/big")


@override_settings(OUTBOUND_ALLOW_LOOPBACK=False, OUTBOUND_ALLOW_PRIVATE=False)
@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://127.0.0.1:9/", "loopback"),
        ("http://localhost:9/", "loopback"),
        ("http://[::1]:9/", "loopback"),
        ("http://10.1.2.3/", "private"),
        ("http://192.168.0.1/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://0.0.0.0/", "reserved"),
        ("file:///etc/passwd", "only http"),
        ("ftp://example.com/", "only http"),
    ],
)
def test_http_request_refuses_internal_destinations(url, reason):
    with pytest.raises(BlockError, match=reason):
        run("http_request", url=url)


@override_settings(OUTBOUND_ALLOW_LOOPBACK=True, OUTBOUND_ALLOW_PRIVATE=False)
def test_http_request_checks_every_redirect_hop(http_server):
    # The first hop (loopback) is allowed; the redirect it answers leads into a private
    # network, and the check before the second request refuses it.
    with pytest.raises(BlockError, match="private"):
        run("http_request", url=f"{http_server}/to-private")


def test_outputs_must_be_json_numbers():
    from blocks.base import json_safe

    assert json_safe({"a": [1, 2.5]}) == {"a": [1, 2.5]}
    with pytest.raises(BlockError, match="finite"):
        json_safe({"a": [float("nan")]})
    # text jsonb cannot hold is cleaned, not lost
    assert json_safe({"k\x00": "a\x00b\ud800"}) == {"k\ufffd": "a\ufffdb\ufffd"}
    deep: list = []
    for _ in range(200):
        deep = [deep]
    with pytest.raises(BlockError, match="nested"):
        json_safe(deep)
