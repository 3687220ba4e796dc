"""Traces, end to end: a traced server and worker (OTEL_* set, queues of their own) send
their spans over OTLP/HTTP to a receiver on loopback, which decodes the protobuf with
opentelemetry-proto. One run with a fan-out, a sub-graph, a chord join, a model call, a
person's review and an outbound request must be one trace, each span under what caused it."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx2
import pytest
from django.db import transaction
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from accounts.services import token_issue
from common import tracing
from common.worker_process import start_worker, stop_worker
from credits.models import ModelPrice
from executions.models import GraphExecution, NodeExecution, OutboxMessage, Wait

from .conftest import ROOT, child_database_url, start_asgi
from .documents import link, node
from .test_llm import FakeProvider, provider  # noqa: F401 (the fake model provider)

pytestmark = pytest.mark.integration


class Receiver(BaseHTTPRequestHandler):
    """An OTLP/HTTP trace receiver: POST /v1/traces with an ExportTraceServiceRequest."""

    spans: list[dict] = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ok = self.path == "/v1/traces" and self.headers["Content-Type"] == "application/x-protobuf"
        if ok:
            for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
                resource = _attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        Receiver.spans.append(_span(span, resource["service.name"]))
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200 if ok else 400)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


def _attributes(pairs) -> dict:
    values = {}
    for pair in pairs:
        kind = pair.value.WhichOneof("value")
        values[pair.key] = getattr(pair.value, kind) if kind else None
    return values


def _span(span, service: str) -> dict:
    return {
        "service": service,
        "trace": span.trace_id.hex(),
        "id": span.span_id.hex(),
        "parent": span.parent_span_id.hex() or None,
        "name": span.name,
        "kind": span.kind,
        "attributes": _attributes(span.attributes),
        "error": span.status.code == 2,  # STATUS_CODE_ERROR
    }


@pytest.fixture
def traced(transactional_db):
    """A receiver, and a server and a worker tracing to it, on queues of their own."""
    Receiver.spans = []
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    env = {
        **os.environ,
        "DATABASE_URL": child_database_url(),
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": (
            f"http://127.0.0.1:{receiver.server_address[1]}/v1/traces"
        ),
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms between batches: the test waits for spans
        "CELERY_NODE_QUEUE": "traced.nodes",
        "CELERY_ENGINE_QUEUE": "traced.engine",
        "CELERY_BACKGROUND_QUEUE": "traced.background",
    }
    worker = start_worker("traced", ROOT / ".local" / "test-traced-worker.log", env)
    server, host = start_asgi(env, ROOT / ".local" / "test-traced-asgi.log")
    yield host
    stop_worker(server)
    stop_worker(worker)
    receiver.shutdown()
    receiver.server_close()


@pytest.mark.usefixtures("provider")
def test_one_run_is_one_trace_with_every_span_under_its_cause(traced, user, recorder):
    ModelPrice.objects.create(model="gpt-test", prompt_per_1k=1, completion_per_1k=1)
    FakeProvider.script = [(200, "4")]
    base, seen = recorder()
    http = httpx2.Client(
        base_url=f"http://{traced}",
        headers={"Authorization": f"Token {token_issue(user=user)[0]}"},
        timeout=30,
    )
    child = http.post("/api/graphs/", json={
        "name": "Child",
        "nodes": [node("who", "input", name="who"),
                  node("greet", "text_template", format="hi {{ w }}"),
                  node("out", "output", name="result")],
        "links": [link("who", "result", "greet", "values_#_w"),
                  link("greet", "output", "out", "value")],
    }).json()  # fmt: skip
    parent = http.post("/api/graphs/", json={
        "name": "Traced",
        "nodes": [
            node("items", "input", name="items", value=[1, 2, 3]),
            node("each", "step_through_items"),
            node("double", "calculator", operation="multiply", b=2, round_result=True),
            node("doubled", "output", name="doubled"),
            node("sub", "agent_executor", graph_id=child["id"], inputs={"who": "you"}),
            node("ask", "llm_text", model="gpt-test", prompt="What is 2+2?"),
            node("both", "text_template", format="{{ s }} / {{ a }}"),
            node("review", "human_review", message="Post it?"),
            node("post", "http_request", url=f"{base}/post", method="POST"),
        ],
        "links": [
            link("items", "result", "each", "items"),
            link("each", "item", "double", "a"),
            link("double", "result", "doubled", "value"),
            link("sub", "result", "both", "values_#_s"),
            link("ask", "response", "both", "values_#_a"),
            link("both", "output", "review", "data"),
            link("review", "approved_data", "post", "body"),
        ],
    }).json()  # fmt: skip
    started = http.post(f"/api/graphs/{parent['id']}/execute/", json={"inputs": {}})
    assert started.status_code == 201, started.text
    run_id = started.json()["id"]
    review = _pending_review(run_id)
    approved = http.post(f"/api/reviews/{review}/approve/", json={"message": "ok"})
    assert approved.status_code == 200, approved.text
    record = _ended(http, run_id)
    assert record["status"] == "COMPLETED", record
    trace_id = record["trace_id"]
    assert trace_id and len(trace_id) == 32

    spans = _spans_of(trace_id, until=lambda s: any(x["name"] == "node post" for x in s))
    by_id = {s["id"]: s for s in spans}
    tree = _tree_text(spans)
    print(tree)  # the closing note shows it

    def ancestors(span):
        while span["parent"] in by_id:
            span = by_id[span["parent"]]
            yield span

    # The request that started the run is the root; the start is its child.
    roots = [s for s in spans if s["parent"] is None]
    assert len(roots) == 1 and roots[0]["service"] == "agentgraph-web", tree
    assert roots[0]["name"].startswith("POST") and "execute" in roots[0]["name"], tree
    starts = [s for s in spans if s["name"] == "start run"]
    start = next(s for s in starts if s["attributes"]["agentgraph.depth"] == 0)
    assert start["parent"] == roots[0]["id"] and len(starts) == 2  # and the sub-graph's
    # Every node execution of the run and of its sub-graph's run: a block-run span under
    # its Celery task's span, in the worker, all in this one trace.
    node_spans = [s for s in spans if s["name"].startswith("node ")]
    ran = defaultdict(int)
    for s in node_spans:
        ran[(s["attributes"]["agentgraph.depth"], s["attributes"]["agentgraph.node_id"])] += 1
        task = by_id[s["parent"]]
        assert task["service"] == "agentgraph-worker" and "executions.run_node" in task["name"]
    assert ran[(0, "double")] == 3 and ran[(0, "doubled")] == 3  # the fan-out
    assert ran[(1, "greet")] == 1 and ran[(1, "out")] == 1  # the sub-graph's nodes
    assert {"items", "each", "sub", "ask", "both", "review", "post"} <= {n for _, n in ran}
    # The sub-graph's nodes descend from the parent's `sub` node.
    sub = next(s for s in node_spans if s["attributes"]["agentgraph.node_id"] == "sub")
    greet = next(s for s in node_spans if s["attributes"]["agentgraph.node_id"] == "greet")
    assert sub["id"] in {a["id"] for a in ancestors(greet)}, tree
    assert greet["attributes"]["agentgraph.execution_id"] != run_id
    # Queue waits: beside each node's task span, under the publish that queued it.
    queued = [s for s in spans if s["name"] == "queued double"]
    assert len(queued) == 3 and all("apply_async" in by_id[q["parent"]]["name"] for q in queued)
    # The chord's join ran as a task of its own in the trace.
    assert any("executions.join_nodes" in s["name"] for s in spans), tree
    # The model call, with GenAI attributes, under the `ask` node.
    chat = _one(spans, "chat gpt-test")
    assert by_id[chat["parent"]]["attributes"]["agentgraph.node_id"] == "ask"
    assert chat["attributes"]["gen_ai.request.model"] == "gpt-test"
    assert chat["attributes"]["gen_ai.usage.input_tokens"] == 1200
    assert chat["attributes"]["gen_ai.usage.output_tokens"] == 800
    # The review: decided by a request in a trace of its own, the node went on in the run's,
    # with its wait as a span from parking to the decision.
    wait = _one(spans, "wait review")
    assert wait["attributes"]["agentgraph.node_id"] == "review"
    approve = [s for s in Receiver.spans if "approve" in s["name"] and s["parent"] is None]
    assert len(approve) == 1 and approve[0]["trace"] != trace_id
    # The outbound requests are client spans (the model's under its chat span), and the
    # http_request node's sent its traceparent.
    assert chat["id"] in {s["parent"] for s in spans if s["name"] == "POST"}
    post = next(
        s for s in spans if s["name"] == "POST" and by_id[s["parent"]]["name"] == "node post"
    )
    assert post["attributes"]["server.address"] == "127.0.0.1"
    assert "url.full" not in post["attributes"]  # a path or query may hold a secret
    sent = [r for r in seen if r["path"] == "/post"]
    assert sent[0]["headers"]["traceparent"].startswith(f"00-{trace_id}-{post['id']}-")
    # A token in a query (older WebSocket clients send one) never reaches a span.
    assert http.get(f"/api/executions/{run_id}/?token=leak-me-not&page=2").status_code == 200
    deadline = time.monotonic() + 10
    while not (asked := [s for s in Receiver.spans if s["parent"] is None and any(
            "page=2" in str(v) for v in s["attributes"].values())]):  # fmt: skip
        assert time.monotonic() < deadline, "the request's span never came"
        time.sleep(0.2)
    assert "leak-me-not" not in repr(Receiver.spans)
    assert "token=[redacted]" in repr(asked[0]["attributes"])
    # Statements and Redis calls are traced by their instrumentations, without values.
    assert any(s["attributes"].get("db.system") == "postgresql" for s in spans)
    assert any(s["attributes"].get("db.system") == "redis" for s in spans)


def test_tracing_is_off_unless_an_endpoint_is_configured():
    assert not tracing.configured({})
    assert tracing.configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing.configured({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"})
    assert not tracing.configured(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}
    )
    # This process (the test runner) has none: nothing here traces, no span code runs.
    assert not tracing.ENABLED and tracing.current_traceparent() == ""
    assert tracing.trace_id_of("00-" + "a" * 32 + "-" + "b" * 16 + "-01") == "a" * 32
    assert tracing.trace_id_of("") == ""


def _pending_review(run_id, timeout=60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = Wait.objects.filter(execution_id=run_id, kind="review", status="pending")
        if found.exists():
            return str(found.get().pk)
        time.sleep(0.1)
    raise AssertionError(f"no review: {GraphExecution.objects.get(pk=run_id).status}")


def _ended(http, run_id, timeout=60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = http.get(f"/api/executions/{run_id}/").json()
        if record["status"] in {"COMPLETED", "FAILED", "CANCELLED"}:
            return record
        time.sleep(0.1)
    raise AssertionError("the run did not end")


def _spans_of(trace_id, until, timeout=20.0) -> list[dict]:
    """The trace's spans, once `until` holds of them and no more have come for a moment."""
    deadline = time.monotonic() + timeout
    count = -1
    while time.monotonic() < deadline:
        spans = [s for s in Receiver.spans if s["trace"] == trace_id]
        if until(spans) and len(spans) == count:
            return spans
        count = len(spans)
        time.sleep(0.5)
    raise AssertionError(f"spans still missing: {sorted({s['name'] for s in spans})}")


def _one(spans, name) -> dict:
    found = [s for s in spans if s["name"] == name]
    assert len(found) == 1, (name, [s["name"] for s in spans])
    return found[0]


def _tree_text(spans) -> str:
    """The span tree, indented, statements and Redis calls counted instead of listed."""
    children = defaultdict(list)
    ids = {s["id"] for s in spans}
    for s in spans:
        children[s["parent"] if s["parent"] in ids else None].append(s)
    lines: list[str] = []

    def walk(parent, depth):
        kids = children[parent]
        storage = [k for k in kids if k["attributes"].get("db.system") and not children[k["id"]]]
        for kid in kids:
            if kid in storage:
                continue
            lines.append(f"{'  ' * depth}{kid['name']} [{kid['service']}]")
            walk(kid["id"], depth + 1)
        if storage:
            lines.append(f"{'  ' * depth}({len(storage)} SQL/Redis calls)")

    walk(None, 0)
    return "\n".join(lines)


def test_a_message_the_relay_sends_continues_the_trace_it_was_decided_in(
    monkeypatch, transactional_db
):
    """The broker refuses the on-commit send; the relay, later and in no span, publishes it
    with the decision's traceparent in its headers and as the current context."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    from executions import dispatch, outbox

    monkeypatch.setattr(tracing, "ENABLED", True)
    tracer = TracerProvider().get_tracer("test")  # not the global provider: nothing exported

    def refused(kind, body):
        raise ConnectionError("broker down")

    with tracer.start_as_current_span("decision") as span, transaction.atomic():
        outbox.record("start", {"run": "3c1f0e4e-0000-4000-8000-000000000000"}, refused)
    decided = span.get_span_context()
    flags = int(decided.trace_flags)  # sampled, and (W3C level 2) a random trace id
    expected = f"00-{decided.trace_id:032x}-{decided.span_id:016x}-{flags:02x}"
    assert OutboxMessage.objects.get().body["trace"] == expected

    published = []

    class Signature:
        def __init__(self, name, **options):
            self.name, self.options = name, options

        def apply_async(self, **kwargs):
            current = trace.get_current_span().get_span_context()
            published.append((self.name, self.options, f"{current.trace_id:032x}"))

    monkeypatch.setattr(dispatch.current_app, "signature", Signature)
    assert outbox.relay(dispatch.send_message, older_than=0) == 1
    ((name, options, current_trace),) = published
    assert name == dispatch.START_EXECUTION
    assert options["headers"] == {"traceparent": expected}
    assert current_trace == f"{decided.trace_id:032x}"
    assert not OutboxMessage.objects.exists()


def test_with_tracing_off_messages_carry_no_trace(transactional_db):
    from executions import outbox

    with transaction.atomic():
        outbox.record("start", {"run": "r"}, lambda kind, body: (_ for _ in ()).throw(OSError))
    assert OutboxMessage.objects.get().body == {"run": "r"}


def test_a_chain_hops_outbox_row_carries_its_trace(api, user, monkeypatch, transactional_db):
    """A chain hop writes its next node's message in its own statement: with tracing on,
    the row holds the trace as the send does, so a relayed hop stays in its run's trace."""
    from opentelemetry.sdk.trace import TracerProvider

    from executions import dispatch
    from executions.node_runs import node_process

    from .conftest import create_graph

    monkeypatch.setattr(tracing, "ENABLED", True)
    sent = []

    def refuse(kind, body):
        sent.append(body)
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(dispatch, "send_message", refuse)
    graph = create_graph(api, {
        "name": "Two hops",
        "nodes": [node("a", "store_value", input="v"), node("b", "store_value")],
        "links": [link("a", "output", "b", "input")],
    })  # fmt: skip
    eid = api.post(f"/api/graphs/{graph['id']}/execute/", {}, format="json").json()["id"]
    first = NodeExecution.objects.get(execution_id=eid, node_id="a")
    with TracerProvider().get_tracer("test").start_as_current_span("task") as span:
        node_process(first.pk, take_over=False, execution_id=eid)
    expected = tracing.trace_id_of(sent[-1]["trace"])
    assert expected == f"{span.get_span_context().trace_id:032x}"
    row = OutboxMessage.objects.get(body__run=eid, body__groups__0__0__1="b")
    assert row.body == json.loads(json.dumps(sent[-1]))  # what the relay sends, trace included


def test_request_spans_lose_tokens_under_either_convention():
    """The old HTTP conventions put the query in http.url/http.target (with "?"); the stable
    ones put it bare in url.query (OTEL_SEMCONV_STABILITY_OPT_IN=http)."""
    from opentelemetry.sdk.trace import TracerProvider

    span = TracerProvider().get_tracer("test").start_span("GET", attributes={
        "http.target": "/api/x/?token=t0k&page=2",
        "url.query": "token=t0k&page=2",
    })  # fmt: skip
    tracing._scrub_request_span(span, None)
    assert span.attributes["http.target"] == "/api/x/?token=[redacted]&page=2"
    assert span.attributes["url.query"] == "token=[redacted]&page=2"
