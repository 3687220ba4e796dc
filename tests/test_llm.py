"""LLM blocks against a local server speaking each provider's real wire format, through the
real `openai` and `anthropic` client libraries, in a real worker."""

import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from credits.models import CreditTransaction, ModelPrice
from executions.models import NodeExecution
from executions.tasks import run_node

from .conftest import ROOT, create_graph, nodes_of, run_graph, wait_for_run
from .documents import link, node
from .model_wire import send_stream

pytestmark = pytest.mark.integration

PLATFORM_KEY = "platform-test-key"
SLOW = -1  # a script status: answer 200, after 6 s  # pyproject's pytest-env gives it to the worker
# The operator's configured endpoints (OPENAI_BASE_URL, ANTHROPIC_BASE_URL in pyproject's
# pytest-env): the platform's key goes there and nowhere else.
# Below the ephemeral range (32768-60999): no outgoing connection can hold it.
PLATFORM_PORT = 28480


class FakeProvider(BaseHTTPRequestHandler):
    """Answers POST /v1/chat/completions (OpenAI) and /v1/messages (Anthropic) from a script
    of (status, text) replies, recording each request."""

    script: list[tuple[int, str]] = []
    requests: list[dict] = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        key = self.headers.get("Authorization", "").removeprefix("Bearer ") or self.headers.get(
            "x-api-key", ""
        )
        FakeProvider.requests.append({"path": self.path, "body": body, "key": key})
        status, text = FakeProvider.script.pop(0) if FakeProvider.script else (200, "ok")
        if status == SLOW:  # an answer that takes its time: the caller may be gone by then
            time.sleep(6)
            status = 200
        if status != 200:
            payload = {"error": {"message": f"scripted {status}", "type": "rate_limit_error"}}
            if self.path.endswith("/messages"):
                payload = {
                    "type": "error",
                    "error": {"type": "rate_limit_error", "message": f"scripted {status}"},
                }
            return self._send(status, payload)
        if body.get("stream"):
            return send_stream(self, self.path, self._answer(body, text))
        if self.path.endswith("/chat/completions"):
            return self._send(
                200,
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "created": 1,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": text},
                        }
                    ],
                    "usage": {
                        "prompt_tokens": 1200,
                        "completion_tokens": 800,
                        "total_tokens": 2000,
                    },
                },
            )
        if self.path.endswith("/messages"):
            return self._send(
                200,
                {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": 1200, "output_tokens": 800},
                },
            )
        self._send(404, {"error": {"message": "no such endpoint"}})

    def _answer(self, body, text):
        """The answer a non-streamed call would get (streamed: cut into its events)."""
        if self.path.endswith("/chat/completions"):
            return {
                "id": "chatcmpl-1", "object": "chat.completion", "created": 1,
                "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 1200, "completion_tokens": 800, "total_tokens": 2000},
            }  # fmt: skip
        return {
            "id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
            "stop_sequence": None, "usage": {"input_tokens": 1200, "output_tokens": 800},
        }  # fmt: skip

    def _send(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def provider():
    """The operator's endpoint (the platform's key is sent here)."""
    FakeProvider.script, FakeProvider.requests = [], []
    server = ThreadingHTTPServer(("127.0.0.1", PLATFORM_PORT), FakeProvider)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()  # the next test binds the same port


def llm_graph(block, **inputs):
    return {
        "name": block,
        "nodes": [
            node("ask", "input", name="question", value="What is 2+2?"),
            node("llm", block, **inputs),
            node("out", "output", name="answer"),
        ],
        "links": [
            link("ask", "result", "llm", "prompt"),
            link("llm", "response", "out", "value"),
        ],
    }


def token_rows(record):
    """The holds of the node's calls (one per call made or refused)."""
    llm = nodes_of(record, "llm")[0]
    return list(
        CreditTransaction.objects.filter(
            node_execution_id=llm["id"], reference__startswith="tokens:"
        )
    )


def tokens_paid(record) -> int:
    """What the node's calls cost in the end: holds, less what was given back, plus more."""
    llm = nodes_of(record, "llm")[0]
    rows = CreditTransaction.objects.filter(
        node_execution_id=llm["id"], reference__startswith="tokens"
    )
    return -sum(r.amount for r in rows)


def test_llm_text_through_openai_is_answered_and_metered(api, worker, provider):
    ModelPrice.objects.create(model="gpt-test", prompt_per_1k=2, completion_per_1k=5)
    FakeProvider.script = [(200, "4")]
    record = run_graph(api, llm_graph("llm_text", model="gpt-test"))
    assert record["status"] == "COMPLETED", record
    assert record["outputs"]["answer"] == ["4"]
    usage = nodes_of(record, "llm")[0]["output_data"]["usage"][0]
    assert usage == {
        "model": "gpt-test",
        "prompt_tokens": 1200,
        "completion_tokens": 800,
        "charged": True,
    }
    sent = FakeProvider.requests[0]
    assert sent["path"] == "/v1/chat/completions" and sent["key"] == PLATFORM_KEY
    assert sent["body"]["messages"][-1] == {"role": "user", "content": "What is 2+2?"}
    # 1.2k prompt x 2 + 0.8k completion x 5 = 6.4 -> 7 credits, once: the call's hold
    # (prompt bound and max_tokens) less what it did not use.
    assert len(token_rows(record)) == 1 and tokens_paid(record) == 7


def test_a_rate_limit_is_retried_then_succeeds(api, worker, provider):
    FakeProvider.script = [(429, ""), (200, "4")]
    record = run_graph(api, llm_graph("llm_text", model="gpt-test"))
    assert record["status"] == "COMPLETED", record
    llm = nodes_of(record, "llm")[0]
    assert llm["attempts"] == 2 and len(FakeProvider.requests) == 2
    # The refused call's hold was given back: only the answered one costs (1.2k x 1 + 0.8k x 3
    # at the default prices = 3.6 -> 4).
    assert len(token_rows(record)) == 2 and tokens_paid(record) == 4


def test_anthropic_through_its_own_client(api, worker, provider):
    FakeProvider.script = [(200, "four")]
    record = run_graph(
        api,
        llm_graph("llm_text", provider="anthropic", model="claude-test", sys_prompt="Be brief."),
    )
    assert record["status"] == "COMPLETED", (record["error"], record["node_executions"])
    assert record["outputs"]["answer"] == ["four"]
    sent = FakeProvider.requests[0]
    assert sent["path"] == "/v1/messages" and sent["body"]["system"] == "Be brief."
    assert sent["key"] == PLATFORM_KEY


def test_structured_answers_are_asked_again_after_a_malformed_one(api, worker, provider):
    FakeProvider.script = [
        (200, "Sure! The answer is 4."),
        (200, '{"answer": 4}'),
        (200, '```json\n{"answer": 4, "why": "2+2"}\n```'),
    ]
    document = llm_graph(
        "llm_structured",
        model="gpt-test",
        expected_format={"answer": "the number", "why": "one line"},
    )
    document["nodes"].append(node("why", "output", name="why"))
    document["links"].append(link("llm", "why", "why", "value"))
    record = run_graph(api, document)
    assert record["status"] == "COMPLETED", record
    assert record["outputs"]["answer"] == [{"answer": 4, "why": "2+2"}]
    assert record["outputs"]["why"] == ["2+2"]
    assert len(FakeProvider.requests) == 3
    second = FakeProvider.requests[1]["body"]["messages"]
    assert "not valid: it is not JSON" in second[-1]["content"]
    third = FakeProvider.requests[2]["body"]["messages"]
    assert "missing field(s) 'why'" in third[-1]["content"]
    assert len(token_rows(record)) == 3  # each call held and metered, once


def test_tokens_are_charged_once_when_the_task_is_delivered_again(api, worker, provider):
    FakeProvider.script = [(200, "4")]
    record = run_graph(api, llm_graph("llm_text", model="gpt-test"))
    llm = NodeExecution.objects.get(execution_id=record["id"], node_id="llm")
    again = run_node.apply_async(args=[llm.pk, record["id"]], ignore_result=False)
    again.get(timeout=30)
    assert len(FakeProvider.requests) == 1 and len(token_rows(record)) == 1


def test_a_users_own_key_is_used_and_not_charged_for_tokens(api, user, worker, provider):
    api.post("/api/credentials/", {"name": "OPENAI", "value": "sk-user-own"}, format="json")
    FakeProvider.script = [(200, "4")]
    graph = create_graph(
        api,
        llm_graph("llm_text", model="gpt-test", credentials={"$credential": "OPENAI"}),
    )
    run_id = api.post(f"/api/graphs/{graph['id']}/execute/", {}, format="json").json()["id"]
    record = wait_for_run(api, run_id)
    assert record["status"] == "COMPLETED", record
    assert FakeProvider.requests[0]["key"] == "sk-user-own"
    assert token_rows(record) == []
    assert nodes_of(record, "llm")[0]["output_data"]["usage"][0]["charged"] is False
    assert "sk-user-own" not in json.dumps(record)


def test_the_worked_example_loops_until_the_model_rates_its_title_8(api, worker, provider):
    document = json.loads((ROOT / "docs" / "examples" / "llm_title_loop.json").read_text())
    FakeProvider.script = [
        (200, '{"title": "Graphs", "score": 5}'),
        (200, '{"title": "Agents That Never Lose Work", "score": 9}'),
    ]
    record = run_graph(api, document)
    assert record["status"] == "COMPLETED", (record["error"], record["node_executions"])
    assert record["outputs"] == {"title": ["Agents That Never Lose Work"]}
    assert len(FakeProvider.requests) == 2
    assert "scored 5/10" in FakeProvider.requests[1]["body"]["messages"][-1]["content"]
    assert len(nodes_of(record, "draft")) == 2


def test_the_block_reference_page_is_generated_from_the_registry():
    from blocks.reference import render

    committed = (ROOT / "docs" / "blocks.md").read_text()
    assert committed == render(), "run `python manage.py blocks_reference` and commit"
    for name in ("llm_text", "llm_structured", "match_text_pattern", "current_time"):
        assert f"## {name}\n" in committed


# --- credits cannot be overspent ------------------------------------------------------------


def test_a_call_the_balance_cannot_pay_is_never_made(api, user, worker, provider):
    from credits.services import balance_of, ledger_apply

    ModelPrice.objects.create(model="gpt-dear", prompt_per_1k=1000, completion_per_1k=1000)
    ledger_apply(
        user_id=user.pk, amount=-(balance_of(user.pk) - 5), type="ADJUSTMENT", reference="leave-5"
    )
    record = run_graph(api, llm_graph("llm_text", model="gpt-dear"))
    assert record["status"] == "FAILED"
    assert "insufficient credits" in nodes_of(record, "llm")[0]["error"]
    assert FakeProvider.requests == []  # the provider never saw it
    assert balance_of(user.pk) >= 0


def test_max_tokens_is_cut_to_what_the_balance_pays_and_the_rest_given_back(
    api, user, worker, provider
):
    from credits.services import balance_of, ledger_apply

    # 1 credit per 1k tokens either way; the balance after the node's own price (9) pays for
    # the prompt (under 100 tokens) and about 8,900 answer tokens, not the 20,000 asked.
    ModelPrice.objects.create(model="gpt-even", prompt_per_1k=1, completion_per_1k=1)
    ledger_apply(
        user_id=user.pk, amount=-(balance_of(user.pk) - 10), type="ADJUSTMENT", reference="leave-10"
    )
    FakeProvider.script = [(200, "4")]
    record = run_graph(api, llm_graph("llm_text", model="gpt-even", max_tokens=20_000))
    assert record["status"] == "COMPLETED", record
    sent = FakeProvider.requests[0]["body"]
    assert 8_800 < sent["max_tokens"] < 9_000
    # The answer used 1,200 + 800 tokens: 2 credits; the other 7 held were given back.
    assert tokens_paid(record) == 2 and balance_of(user.pk) == 10 - 1 - 2


def test_a_call_cut_off_by_the_nodes_time_limit_gives_its_hold_back(api, user, worker, provider):
    from credits.models import TokenHold
    from credits.services import balance_of

    ModelPrice.objects.create(model="gpt-even", prompt_per_1k=1, completion_per_1k=1)
    FakeProvider.script = [(SLOW, "late")]
    document = llm_graph("llm_text", model="gpt-even", max_tokens=5_000)
    document["nodes"][1]["timeout"] = 1
    before = balance_of(user.pk)
    record = run_graph(api, document)
    llm = nodes_of(record, "llm")[0]
    assert record["status"] == "FAILED" and "timed out" in llm["error"], llm
    assert len(token_rows(record)) == 1  # it was held...
    assert tokens_paid(record) == 0  # ...and all given back
    assert TokenHold.objects.get(call=f"{llm['id']}:1:1").settled_at is not None
    assert balance_of(user.pk) == before - 1  # the block's own price only


def test_the_hold_of_a_call_whose_worker_died_is_given_back_by_the_watchdog(
    api, user, worker, provider, settings
):
    import redis
    from django.conf import settings as conf

    from credits.models import TokenHold
    from executions import recovery
    from executions.leases import NodeLease

    ModelPrice.objects.create(model="gpt-even", prompt_per_1k=1, completion_per_1k=1)
    FakeProvider.script = [(SLOW, "never read"), (200, "4")]
    graph = create_graph(api, llm_graph("llm_text", model="gpt-even", max_tokens=5_000))
    response = api.post(f"/api/graphs/{graph['id']}/execute/", {}, format="json")
    eid = response.json()["id"]
    deadline = time.monotonic() + 20
    while not FakeProvider.requests:  # the first call is in flight
        assert time.monotonic() < deadline
        time.sleep(0.05)
    llm = NodeExecution.objects.get(execution_id=eid, node_id="llm")
    owner = redis.Redis.from_url(conf.REDIS_URL).get(NodeLease(llm.pk).key).decode()
    os.kill(int(owner.split(":")[1]), signal.SIGKILL)  # the pool process making the call
    record = wait_for_run(api, eid)
    assert record["status"] == "COMPLETED", record
    assert NodeExecution.objects.get(pk=llm.pk).attempts == 2
    dead = TokenHold.objects.get(call=f"{llm.pk}:1:1")
    assert dead.settled_at is None  # its task died between the hold and the settle

    settings.ENGINE_NODE_LEASE_SECONDS = 0  # holds are looked at once this old
    assert recovery.watchdog()["tokens"] == 1
    dead.refresh_from_db()
    assert dead.released and dead.settled_at is not None
    given_back = CreditTransaction.objects.get(reference=f"tokens-unused:{llm.pk}:1:1")
    assert given_back.amount == dead.amount and given_back.metadata["part"] == "tokens-released"
    assert tokens_paid(record) == 2  # the second attempt's call only (1,200 + 800 tokens)
    assert recovery.watchdog()["tokens"] == 0  # given back once
