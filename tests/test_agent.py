"""The ai_agent block against a local server speaking OpenAI's and Anthropic's real wire
formats (tool calls included), through the real client libraries, in real workers: tools
answered right, in parallel, errors fed back, limits, and steps that survive SIGKILL."""

import json
import os
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import override_settings

from common.worker_process import ROOT, start_worker, stop_worker
from credits.models import CreditTransaction
from executions.models import GraphExecution, NodeExecution, Wait

from .conftest import child_database_url, create_graph, wait_for_run
from .documents import link, node
from .model_wire import send_stream
from .test_control import execute, wait_until

pytestmark = pytest.mark.integration

PORT = 28480  # the operator's endpoint (OPENAI_BASE_URL, ANTHROPIC_BASE_URL in pytest-env)


class Model(BaseHTTPRequestHandler):
    """A scripted model: each request takes the next reply, `{"text": ...}` or
    `{"calls": [(id, name, arguments), ...]}`, optionally `"slow": seconds` first."""

    script: list[dict] = []
    requests: list[dict] = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Model.requests.append({"path": self.path, "body": body})
        reply = Model.script.pop(0) if Model.script else {"text": "nothing more to say"}
        if reply.get("slow"):
            time.sleep(reply["slow"])
        if reply.get("status"):  # a refusal: 400 is not retried
            data = json.dumps({"error": {"message": "scripted", "type": "invalid_request_error"}})
            self.send_response(reply["status"])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data.encode())
            return
        calls = reply.get("calls", [])
        if self.path.endswith("/chat/completions"):
            message = {"role": "assistant", "content": reply.get("text")}
            if calls:
                message["tool_calls"] = [
                    {"id": cid, "type": "function",
                     "function": {"name": name, "arguments": json.dumps(args)}}
                    for cid, name, args in calls
                ]  # fmt: skip
            payload = {
                "id": "chatcmpl-1", "object": "chat.completion", "created": 1,
                "model": body["model"],
                "choices": [{"index": 0, "message": message,
                             "finish_reason": "tool_calls" if calls else "stop"}],
                "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
            }  # fmt: skip
        else:
            content = [{"type": "text", "text": reply["text"]}] if reply.get("text") else []
            content += [
                {"type": "tool_use", "id": cid, "name": name, "input": args}
                for cid, name, args in calls
            ]
            payload = {
                "id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
                "content": content, "stop_reason": "tool_use" if calls else "end_turn",
                "stop_sequence": None, "usage": {"input_tokens": 100, "output_tokens": 20},
            }  # fmt: skip
        try:
            if body.get("stream"):
                return send_stream(self, self.path, payload, reply.get("pause", 0.0))
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the caller is gone (a killed worker): its answer never arrives


@pytest.fixture
def model():
    Model.script, Model.requests = [], []
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Model)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield Model
    server.shutdown()
    server.server_close()


class Tools(BaseHTTPRequestHandler):
    """What block tools reach: /hit records a call; /together answers only once two calls
    are in flight at the same time (so it proves they ran in parallel)."""

    seen: list[str] = []
    together = threading.Barrier(2, timeout=5)

    def log_message(self, *args):
        pass

    def do_GET(self):
        Tools.seen.append(self.path)
        if self.path.startswith("/together"):
            try:
                Tools.together.wait()
                status = 200
            except threading.BrokenBarrierError:
                status = 500
        else:
            status = 200
        data = json.dumps({"path": self.path}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def tools_server():
    Tools.seen, Tools.together = [], threading.Barrier(2, timeout=5)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Tools)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def agent_graph(tools, provider="openai", **inputs):
    return {
        "name": "Agent",
        "nodes": [
            node(
                "agent", "ai_agent", prompt="Work it out.", provider=provider, tools=tools, **inputs
            ),
            node("answer", "output", name="answer"),
            node("steps", "output", name="steps"),
        ],
        "links": [
            link("agent", "response", "answer", "value"),
            link("agent", "steps", "steps", "value"),
        ],
    }


def shouter(api, seconds=0):
    """A graph to use as a tool: input `word`, output `shouted`."""
    return create_graph(
        api,
        {
            "name": "Shout it",
            "description": "Shouts a word.",
            "nodes": [
                node("word", "input", name="word", description="the word to shout"),
                node("wait", "sleep", seconds=seconds),
                node("loud", "text_template", format="{{ w | upper }}!"),
                node("out", "output", name="shouted"),
            ],
            "links": [
                link("word", "result", "wait", "value"),
                link("wait", "output", "loud", "values_#_w"),
                link("loud", "output", "out", "value"),
            ],
        },
    )


def tool_messages(request):
    """The tool results a request sent back, by call id, in either wire format."""
    results = {}
    for message in request["body"]["messages"]:
        if message["role"] == "tool":
            results[message["tool_call_id"]] = (json.loads(message["content"]), False)
        if message["role"] == "user" and isinstance(message["content"], list):
            for block in message["content"]:
                if block.get("type") == "tool_result":
                    results[block["tool_use_id"]] = (
                        json.loads(block["content"]),
                        block.get("is_error", False),
                    )
    return results


# --- answers -----------------------------------------------------------------------------------


def test_a_block_tool_and_a_graph_tool_asked_at_once_answer_the_task(api, user, worker, model):
    child = shouter(api)
    model.script = [
        {
            "calls": [
                ("c1", "calculator", {"operation": "add", "a": 2, "b": 3}),
                ("c2", "Shout_it", {"word": "five"}),
            ]
        },
        {"text": "2+3 is 5, shouted FIVE!"},
    ]
    graph = create_graph(api, agent_graph([{"block": "calculator"}, {"graph_id": child["id"]}]))
    record = wait_for_run(api, execute(api, graph))
    assert record["status"] == "COMPLETED", record
    assert record["outputs"]["answer"] == ["2+3 is 5, shouted FIVE!"]
    first, second = model.requests
    offered = {t["function"]["name"]: t["function"] for t in first["body"]["tools"]}
    assert set(offered) == {"calculator", "Shout_it"}
    assert offered["Shout_it"]["description"] == "Shouts a word."
    assert offered["Shout_it"]["parameters"]["required"] == ["word"]
    assert "operation" in offered["calculator"]["parameters"]["properties"]
    answers = tool_messages(second)
    assert answers["c1"][0] == {"result": [5]}
    assert answers["c2"][0] == {"shouted": ["FIVE!"]}
    assert [m["role"] for m in second["body"]["messages"]] == ["user", "assistant", "tool", "tool"]
    steps = record["outputs"]["steps"][0]
    assert [s["type"] for s in steps] == ["llm", "tool", "tool", "llm"]
    # the graph tool ran as a child run of the agent's node, parked meanwhile
    agent = NodeExecution.objects.get(execution_id=record["id"], node_id="agent")
    child_run = GraphExecution.objects.get(parent_node_execution=agent)
    assert child_run.status == "COMPLETED" and str(child_run.graph_id) == child["id"]
    assert Wait.objects.filter(node_execution=agent, kind="subgraph", status="woken").exists()


def test_anthropic_tool_errors_go_back_to_the_model_which_recovers(api, user, worker, model):
    model.script = [
        {
            "calls": [
                ("t1", "calculator", {"operation": "divide", "a": 1, "b": 0}),
                ("t2", "format_disk", {}),
            ]
        },
        {"calls": [("t3", "calculator", {"operation": "divide", "a": 1, "b": 4})]},
        {"text": "It is 0.25."},
    ]
    graph = create_graph(api, agent_graph([{"block": "calculator"}], provider="anthropic"))
    record = wait_for_run(api, execute(api, graph))
    assert record["status"] == "COMPLETED", record
    assert record["outputs"]["answer"] == ["It is 0.25."]
    answers = tool_messages(model.requests[1])
    assert answers["t1"][1] is True and "zero" in answers["t1"][0]["error"]
    assert answers["t2"][1] is True and "unknown tool" in answers["t2"][0]["error"]
    assert tool_messages(model.requests[2])["t3"] == ({"result": [0.25]}, False)
    assert model.requests[0]["body"]["tools"][0]["name"] == "calculator"
    assert "input_schema" in model.requests[0]["body"]["tools"][0]


def test_parallel_tool_calls_run_at_the_same_time(api, user, worker, model, tools_server):
    model.script = [
        {
            "calls": [
                ("a", "http_request", {"url": f"{tools_server}/together/a"}),
                ("b", "http_request", {"url": f"{tools_server}/together/b"}),
            ]
        },
        {"text": "both came back"},
    ]
    graph = create_graph(api, agent_graph([{"block": "http_request"}]))
    record = wait_for_run(api, execute(api, graph))
    assert record["status"] == "COMPLETED", record
    answers = tool_messages(model.requests[1])
    # each answered only because the other was in flight at the same moment
    assert answers["a"][0]["response"] == [{"path": "/together/a"}]
    assert answers["b"][0]["response"] == [{"path": "/together/b"}]


def test_max_steps_stops_an_agent_that_never_answers(api, user, worker, model):
    model.script = [
        {"calls": [(f"c{i}", "calculator", {"operation": "add", "a": i, "b": 1})]} for i in range(5)
    ]
    graph = create_graph(api, agent_graph([{"block": "calculator"}], max_steps=2))
    record = wait_for_run(api, execute(api, graph))
    assert record["status"] == "FAILED", record
    assert "no final answer within max_steps (2)" in record["error"]
    assert len(model.requests) == 2
    agent = NodeExecution.objects.get(execution_id=record["id"], node_id="agent")
    assert len(agent.output_data["steps"][0]) == 4  # two calls, two tool answers, kept


def test_tools_an_agent_may_not_use_are_refused_before_any_call(api, user, worker, model):
    graph = create_graph(api, agent_graph([{"block": "llm_text"}]))
    record = wait_for_run(api, execute(api, graph))
    assert record["status"] == "FAILED" and "not a block an agent can use" in record["error"]
    assert model.requests == []


def test_each_call_is_charged_once_tools_included(api, user, worker, model, tools_server):
    model.script = [
        {"calls": [("h1", "http_request", {"url": f"{tools_server}/hit"})]},
        {"text": "done"},
    ]
    graph = create_graph(api, agent_graph([{"block": "http_request"}]))
    record = wait_for_run(api, execute(api, graph))
    assert record["status"] == "COMPLETED", record
    agent = NodeExecution.objects.get(execution_id=record["id"], node_id="agent")
    references = sorted(
        CreditTransaction.objects.filter(node_execution_id=agent.pk, type="USAGE").values_list(
            "reference", flat=True
        )
    )
    assert f"usage:{agent.pk}" in references  # the agent's own run
    assert f"usage:{agent.pk}:tool:h1" in references  # the http_request it ran as a tool
    tokens = [r for r in references if r.startswith("tokens:")]
    assert len(tokens) == 2  # one per model call


# --- durability --------------------------------------------------------------------------------


def kill_group(proc):
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
    for pid in [proc.pid, *map(int, children.stdout.split())]:
        os.kill(pid, signal.SIGKILL)


@override_settings(ENGINE_BLOCK_QUEUES={"ai_agent": "agents"})
def test_a_worker_killed_after_the_first_answer_repeats_no_completed_call(
    api, user, worker, model, tools_server
):
    """The agent runs on a worker of its own queue. Kill it while its second model call is
    in flight; another worker takes the node over from the last committed step: the first
    call and the tool are not repeated, only the call that never completed."""
    env = {**os.environ, "DATABASE_URL": child_database_url(),
           "ENGINE_BLOCK_QUEUES": "ai_agent=agents"}  # fmt: skip
    model.script = [
        {"calls": [("h1", "http_request", {"url": f"{tools_server}/hit"})]},
        {"slow": 8, "text": "never arrives"},
        {"text": "done after the crash"},
    ]
    doomed = start_worker("agent-doomed", ROOT / ".local" / "agent-doomed.log", env, "-Q", "agents")
    try:
        eid = execute(api, create_graph(api, agent_graph([{"block": "http_request"}])))
        wait_until(lambda: len(model.requests) >= 2, what="the second model call")
        kill_group(doomed)
    finally:
        stop_worker(doomed)
    revived = start_worker(
        "agent-revived", ROOT / ".local" / "agent-revived.log", env, "-Q", "agents"
    )
    try:
        record = wait_for_run(api, eid, timeout=90)
    finally:
        stop_worker(revived)
    assert record["status"] == "COMPLETED", record
    assert record["outputs"]["answer"] == ["done after the crash"]
    assert Tools.seen == ["/hit"]  # the tool ran once
    first_calls = [r for r in model.requests if len(r["body"]["messages"]) == 1]
    assert len(first_calls) == 1  # the completed first call was not made again
    assert len(model.requests) == 3  # the one in flight was made again, once
    steps = record["outputs"]["steps"][0]
    assert [s["type"] for s in steps] == ["llm", "tool", "llm"]


def test_a_worker_killed_while_a_graph_tool_runs_loses_nothing(api, user, worker, model):
    """The agent's node waits for its graph tool without a worker: a worker dying meanwhile
    is nothing to it; the child's end resumes it and every call is made once."""
    env = {**os.environ, "DATABASE_URL": child_database_url()}
    child = shouter(api, seconds=2)
    model.script = [{"calls": [("s1", "Shout_it", {"word": "hey"})]}, {"text": "HEY! it said"}]
    doomed = start_worker("agent-doomed2", ROOT / ".local" / "agent-doomed2.log", env)
    try:
        eid = execute(api, create_graph(api, agent_graph([{"graph_id": child["id"]}])))
        wait_until(
            lambda: NodeExecution.objects.filter(
                execution_id=eid, node_id="agent", status="WAITING"
            ).exists(),
            what="the agent parked on its tool",
        )
        kill_group(doomed)
    finally:
        stop_worker(doomed)
    record = wait_for_run(api, eid, timeout=90)
    assert record["status"] == "COMPLETED", record
    assert len(model.requests) == 2
    assert GraphExecution.objects.filter(depth=1, graph_id=child["id"]).count() == 1


def test_cancelling_an_agent_mid_loop_stops_its_tool_runs(api, user, worker, model):
    child = shouter(api, seconds=30)
    model.script = [
        {"calls": [("s1", "Shout_it", {"word": "a"}), ("s2", "Shout_it", {"word": "b"})]}
    ]
    eid = execute(api, create_graph(api, agent_graph([{"graph_id": child["id"]}])))
    wait_until(lambda: GraphExecution.objects.filter(depth=1, status="RUNNING").count() == 2)
    assert api.post(f"/api/executions/{eid}/cancel/").status_code == 200
    assert set(GraphExecution.objects.filter(depth=1).values_list("status", flat=True)) == {
        "CANCELLED"
    }
    assert NodeExecution.objects.get(execution_id=eid, node_id="agent").status == "CANCELLED"
    assert len(model.requests) == 1


# --- streaming ---------------------------------------------------------------------------------


def test_a_models_text_streams_live_coalesced_in_order_and_matches_the_output(
    api, user, worker, model
):
    import redis
    from django.conf import settings

    from executions.consumers import _snapshot_now
    from executions.events import stream_key

    answer = "The quick brown fox jumps over the lazy dog. " * 6
    model.script = [{"text": answer, "pause": 0.01}]  # about 70 events over 0.7 s
    document = {
        "name": "Streams",
        "nodes": [node("ask", "llm_text", prompt="Tell me."), node("out", "output", name="a")],
        "links": [link("ask", "response", "out", "value")],
    }
    eid = execute(api, create_graph(api, document))
    wait_until(
        lambda: NodeExecution.objects.filter(
            execution_id=eid, node_id="ask", status="RUNNING"
        ).exists()
    )
    time.sleep(0.3)
    mid = next(ne for ne in _snapshot_now(eid)["node_executions"] if ne["node_id"] == "ask")
    record = wait_for_run(api, eid)
    assert record["status"] == "COMPLETED" and record["outputs"] == {"a": [answer]}
    client = redis.Redis.from_url(settings.REDIS_URL)
    seen = [json.loads(f[b"e"]) for _, f in client.xrange(stream_key(eid))]
    client.close()
    deltas = [e for e in seen if e.get("delta")]
    assert "".join(e["delta"] for e in deltas) == answer  # in order, all of it
    assert [e["offset"] for e in deltas] == [
        sum(len(d["delta"]) for d in deltas[:i]) for i in range(len(deltas))
    ]
    assert 2 <= len(deltas) < 40  # coalesced: never one event per token (70 were streamed)
    done = next(
        i
        for i, e in enumerate(seen)
        if e.get("node_id") == "ask" and e.get("status") == "COMPLETED"
    )
    assert all(seen.index(d) < done for d in deltas)  # before its completion
    # a subscriber in the middle got the text so far in its snapshot
    assert mid["status"] == "RUNNING" and answer.startswith(mid["streamed"]) and mid["streamed"]
    stored = NodeExecution.objects.get(execution_id=eid, node_id="ask")
    assert stored.output_data["response"] == [answer] and "delta" not in json.dumps(
        stored.output_data
    )


def test_run_graph_shows_a_models_text_as_it_arrives(user, worker, model, tmp_path):
    from .test_cli import run_cli

    model.script = [{"text": "first line\nsecond line\nno newline at the end", "pause": 0.01}]
    path = tmp_path / "ask.json"
    document = {
        "name": "Ask",
        "nodes": [node("ask", "llm_text", prompt="Three lines."), node("out", "output", name="a")],
        "links": [link("ask", "response", "out", "value")],
    }
    path.write_text(json.dumps(document))
    out, err = run_cli(str(path), "--user", user.username)
    assert json.loads(out) == {"a": ["first line\nsecond line\nno newline at the end"]}
    shown = [line for line in err.splitlines() if line.startswith("ask> ")]
    assert shown == ["ask> first line", "ask> second line", "ask> no newline at the end"]


# --- control mid-loop ------------------------------------------------------------------------


def test_a_paused_agent_stops_at_its_next_step_and_goes_on_when_resumed(api, user, worker, model):
    model.script = [
        {"calls": [("c1", "calculator", {"operation": "add", "a": 1, "b": 1})], "slow": 1.5},
        {"text": "two"},
    ]
    eid = execute(api, create_graph(api, agent_graph([{"block": "calculator"}])))
    wait_until(lambda: len(model.requests) == 1, what="the first model call")
    assert api.post(f"/api/executions/{eid}/pause/").status_code == 200
    wait_until(
        lambda: NodeExecution.objects.filter(
            execution_id=eid, node_id="agent", status="WAITING"
        ).exists(),
        what="the agent parked at its next step",
    )
    time.sleep(0.5)
    assert len(model.requests) == 1  # nothing more was asked while paused
    assert api.post(f"/api/executions/{eid}/resume/").status_code == 200
    record = wait_for_run(api, eid)
    assert record["status"] == "COMPLETED" and record["outputs"]["answer"] == ["two"], record
    assert len(model.requests) == 2
    assert tool_messages(model.requests[1])["c1"] == ({"result": [2]}, False)


def test_resuming_a_failed_agent_goes_on_from_its_last_step(api, user, worker, model):
    """The provider fails past the node's retries after the first answer; resuming the run
    does not ask the first question again."""
    model.script = [
        {"calls": [("c1", "calculator", {"operation": "multiply", "a": 6, "b": 7})]},
        *[{"status": 400} for _ in range(1)],
        {"text": "42"},
    ]
    eid = execute(api, create_graph(api, agent_graph([{"block": "calculator"}])))
    record = wait_for_run(api, eid)
    assert record["status"] == "FAILED", record
    assert len(model.requests) == 2
    assert api.post(f"/api/executions/{eid}/resume/").status_code == 200
    record = wait_for_run(api, eid)
    assert record["status"] == "COMPLETED" and record["outputs"]["answer"] == ["42"], record
    assert len(model.requests) == 3
    assert len(model.requests[2]["body"]["messages"]) == 3  # user, assistant, tool: from step 1


def test_the_worked_example_researches_with_its_two_tools(api, user, worker, model, tools_server):
    """docs/examples/research_agent.json with docs/examples/summarize_page.json as its graph
    tool, against the scripted model: fetch, summarize (a child run with its own model
    call), answer."""
    examples = ROOT / "docs" / "examples"
    summarize = create_graph(api, json.loads((examples / "summarize_page.json").read_text()))
    text = (examples / "research_agent.json").read_text()
    research = create_graph(api, json.loads(text.replace("SUMMARIZE_GRAPH_ID", summarize["id"])))
    model.script = [
        {"calls": [("f1", "http_request", {"url": f"{tools_server}/hit/lisbon"})]},
        {"calls": [("s1", "Summarize_a_page", {"text": "Lisbon has 545,000 people."})]},
        {"text": "Lisbon: 545,000 people."},  # the summarize graph's own llm_text call
        {"text": "Lisbon has about 545,000 people (source: the fetched page)."},
    ]
    record = wait_for_run(api, execute(api, research, {"question": "How big is Lisbon?"}))
    assert record["status"] == "COMPLETED", record
    assert record["outputs"]["answer"] == [
        "Lisbon has about 545,000 people (source: the fetched page)."
    ]
    assert Tools.seen == ["/hit/lisbon"]
    steps = record["outputs"]["steps"][0]
    assert [(s["type"], s.get("name")) for s in steps] == [
        ("llm", None), ("tool", "http_request"), ("llm", None), ("tool", "Summarize_a_page"),
        ("llm", None),
    ]  # fmt: skip
    assert steps[3]["result"] == {"summary": ["Lisbon: 545,000 people."]}
    child_prompt = model.requests[2]["body"]["messages"][-1]["content"]
    assert "Lisbon has 545,000 people." in child_prompt
