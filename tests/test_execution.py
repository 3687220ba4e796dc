"""Runs graphs end to end: a real Celery worker, RabbitMQ, Redis and PostgreSQL."""

import os
import signal
import time

import pytest
from django.test import override_settings

from credits.models import CreditTransaction
from executions.models import GraphExecution, NodeExecution
from executions.tasks import run_node

from .conftest import all_nodes, create_graph, nodes_of, run_graph, wait_for_run
from .documents import greeting, link, node

pytestmark = pytest.mark.integration


def test_linear_graph_runs_each_node_as_a_task(api, worker):
    record = run_graph(api, greeting(), {"who": "Ada"})
    assert record["status"] == "COMPLETED", record
    assert record["outputs"] == {"greeting": ["Hello Ada!"]}
    assert record["stats"]["node_count"] == 3 and record["stats"]["node_error_count"] == 0
    greet = nodes_of(record, "greet")[0]
    assert greet["input_data"] == {"values": {"name": "Ada"}, "format": "Hello {{ name }}!"}
    assert greet["output_data"] == {"output": ["Hello Ada!"]}
    assert greet["attempts"] == 1 and greet["task_id"]
    assert all(ne["status"] == "COMPLETED" for ne in record["node_executions"])


def test_diamond_fan_in_joins_both_branches_once(api, worker):
    document = {
        "name": "Diamond",
        "nodes": [
            node("start", "input", name="n", value=3),
            node("double", "calculator", operation="multiply", b=2),
            node("square", "calculator", operation="power", b=2),
            node("join", "text_template", format="{{ d }} and {{ s }}"),
            node("out", "output", name="joined"),
        ],
        "links": [
            link("start", "result", "double", "a"),
            link("start", "result", "square", "a"),
            link("double", "result", "join", "values_#_d"),
            link("square", "result", "join", "values_#_s"),
            link("join", "output", "out", "value"),
        ],
    }
    record = run_graph(api, document)
    assert record["status"] == "COMPLETED", record
    assert record["outputs"] == {"joined": ["6.0 and 9.0"]}
    assert len(nodes_of(record, "join")) == 1
    # the two branches became ready together and feed `join`: one chord, joined by its callback
    assert (
        NodeExecution.objects.filter(node_id__in=["double", "square"], propagated=True).count() == 2
    )


def test_fan_out_of_1000_items(api, worker):
    document = {
        "name": "Fan-out",
        "nodes": [
            node("items", "input", name="items"),
            node("each", "step_through_items"),
            node("double", "calculator", operation="multiply", b=2, round_result=True),
            node("out", "output", name="doubled"),
        ],
        "links": [
            link("items", "result", "each", "items"),
            link("each", "item", "double", "a"),
            link("double", "result", "out", "value"),
        ],
    }
    record = run_graph(api, document, {"items": list(range(1000))}, timeout=180)
    assert record["status"] == "COMPLETED", record["error"]
    assert sorted(record["outputs"]["doubled"]) == [2 * i for i in range(1000)]
    assert len(record["node_executions"]) == 500  # the rest are a page away
    every = {"node_executions": all_nodes(api, record)}
    assert len(nodes_of(every, "double")) == 1000 and len(nodes_of(every, "out")) == 1000
    assert record["stats"]["node_count"] == 2002


def test_static_link_value_is_reused_by_every_later_run(api, worker):
    document = {
        "name": "Static",
        "nodes": [
            node("factor", "input", name="factor", value=10),
            node("items", "step_through_items", items=[1, 2, 3]),
            node("mul", "calculator", operation="multiply"),
            node("out", "output", name="products"),
        ],
        "links": [
            link("factor", "result", "mul", "a"),  # static: leaves a static-output block
            link("items", "item", "mul", "b"),
            link("mul", "result", "out", "value"),
        ],
    }
    record = run_graph(api, document)
    assert record["status"] == "COMPLETED", record
    assert sorted(record["outputs"]["products"]) == [10.0, 20.0, 30.0]
    assert len(nodes_of(record, "mul")) == 3


def test_explicit_static_link_from_a_plain_block(api, worker):
    document = {
        "name": "Static link",
        "nodes": [
            node("base", "calculator", operation="add", a=1, b=1),
            node("items", "step_through_items", items=[1, 2]),
            node("sum", "calculator", operation="add"),
            node("out", "output", name="sums"),
        ],
        "links": [
            link("base", "result", "sum", "a", is_static=True),
            link("items", "item", "sum", "b"),
            link("sum", "result", "out", "value"),
        ],
    }
    record = run_graph(api, document)
    assert sorted(record["outputs"]["sums"]) == [3.0, 4.0]


def test_dynamic_pins_on_sinks_and_sources(api, worker):
    document = {
        "name": "Dynamic pins",
        "nodes": [
            node("person", "input", name="person", value={"first": "Ada", "last": "Lovelace"}),
            node("a", "store_value", input="A"),
            node("b", "store_value", input="B"),
            node("list", "step_through_items"),
            node("full", "text_template", format="{{ f }} {{ l }}"),
            node("letters", "output", name="letters"),
            node("name", "output", name="name"),
            node("missing", "output", name="missing"),
        ],
        "links": [
            link("person", "result_#_first", "full", "values_#_f"),
            link("person", "result_#_last", "full", "values_#_l"),
            link("person", "result_#_middle", "missing", "value"),  # absent key: nothing sent
            link("a", "output", "list", "items_$_0"),
            link("b", "output", "list", "items_$_1"),
            link("list", "item", "letters", "value"),
            link("full", "output", "name", "value"),
        ],
    }
    record = run_graph(api, document)
    assert record["status"] == "COMPLETED", record
    assert record["outputs"]["name"] == ["Ada Lovelace"]
    assert record["outputs"]["letters"] == ["A", "B"]
    assert "missing" not in record["outputs"] and nodes_of(record, "missing") == []


def test_nested_pin_paths_pick_and_build_values(api, worker):
    rows = [{"name": "Ada", "langs": ["en", "fr"]}, {"name": "Alan", "langs": ["en"]}]
    document = {
        "name": "Nested pins",
        "nodes": [
            node("rows", "input", name="rows", value=rows),
            node("build", "create_dict", values={}),
            node("out", "output", name="built"),
            node("last", "output", name="last"),
        ],
        "links": [
            link("rows", "result_$_0_#_name", "build", "values_#_user_#_name"),
            link("rows", "result_$_0_#_langs_$_1", "build", "values_#_user_#_langs_$_0"),
            link("rows", "result_$_-1_#_name", "last", "value"),
            link("rows", "result_$_5_#_name", "last", "value"),  # no such row: nothing sent
            link("build", "dictionary", "out", "value"),
        ],
    }
    record = run_graph(api, document)
    assert record["status"] == "COMPLETED", record
    assert record["outputs"]["built"] == [{"user": {"name": "Ada", "langs": ["fr"]}}]
    assert record["outputs"]["last"] == ["Alan"]


def test_links_from_static_blocks_are_stored_and_shown_static(api):
    document = {
        "name": "Static",
        "nodes": [node("v", "store_value", input=1), node("o", "output", name="o")],
        "links": [link("v", "output", "o", "value")],
    }
    saved = api.post("/api/graphs/", document, format="json").json()
    assert saved["links"][0]["is_static"] is True
    assert api.get(f"/api/graphs/{saved['id']}/").json()["links"][0]["is_static"] is True


def test_condition_runs_only_the_taken_branch(api, worker):
    document = {
        "name": "Branch",
        "nodes": [
            node("n", "input", name="n"),
            node("check", "condition", operator=">", value2=10),
            node("big", "text_template", format="big {{ v }}"),
            node("small", "text_template", format="small {{ v }}"),
            node("out", "output", name="verdict"),
        ],
        "links": [
            link("n", "result", "check", "value1"),
            link("check", "yes_output", "big", "values_#_v"),
            link("check", "no_output", "small", "values_#_v"),
            link("big", "output", "out", "value"),
            link("small", "output", "out", "value"),
        ],
    }
    graph = create_graph(api, document)
    runs = {}
    for n in (50, 5):
        eid = api.post(
            f"/api/graphs/{graph['id']}/execute/", {"inputs": {"n": n}}, format="json"
        ).json()["id"]
        runs[n] = wait_for_run(api, eid)
    assert runs[50]["outputs"] == {"verdict": ["big 50"]} and nodes_of(runs[50], "small") == []
    assert runs[5]["outputs"] == {"verdict": ["small 5"]} and nodes_of(runs[5], "big") == []
    assert nodes_of(runs[5], "check")[0]["output_data"] == {"result": [False], "no_output": [5]}


def test_unhandled_error_fails_the_run_with_the_reason(api, worker):
    document = {
        "name": "Divide",
        "nodes": [
            node("div", "calculator", operation="divide", a=1, b=0),
            node("out", "output", name="q"),
            node("other", "calculator", operation="add", a=1, b=2),
            node("other_out", "output", name="other"),
        ],
        "links": [
            link("div", "result", "out", "value"),
            link("other", "result", "other_out", "value"),
        ],
    }
    record = run_graph(api, document)
    assert record["status"] == "FAILED"
    assert "div" in record["error"] and "division by zero" in record["error"]
    div = nodes_of(record, "div")[0]
    assert div["status"] == "FAILED" and div["output_data"] == {"error": ["division by zero"]}
    assert nodes_of(record, "out") == []
    assert record["outputs"] == {"other": [3.0]}  # independent branches still finish
    assert record["stats"]["node_error_count"] == 1


def test_handled_error_completes_the_run(api, worker):
    document = {
        "name": "Divide safely",
        "nodes": [
            node("div", "calculator", operation="divide", a=1, b=0),
            node("ok", "output", name="q"),
            node("err", "output", name="problem", format="could not divide: {{ value }}"),
        ],
        "links": [link("div", "result", "ok", "value"), link("div", "error", "err", "value")],
    }
    record = run_graph(api, document)
    assert record["status"] == "COMPLETED", record
    assert record["outputs"] == {"problem": ["could not divide: division by zero"]}
    assert record["stats"]["node_error_count"] == 1


def test_invalid_runtime_input_fails_the_node(api, worker):
    document = {
        "name": "Bad runtime input",
        "nodes": [
            node("t", "input", name="t", value="not a number"),
            node("calc", "calculator", b=1),
        ],
        "links": [link("t", "result", "calc", "a")],
    }
    record = run_graph(api, document)
    assert record["status"] == "FAILED"
    assert "invalid input" in nodes_of(record, "calc")[0]["error"]


@override_settings(ENGINE_MAX_NODE_EXECUTIONS=40)
def test_a_loop_that_passes_the_cap_fails_clearly(api, worker):
    document = {
        "name": "Forever",
        "nodes": [
            node("start", "input", name="n", value=0),
            node("inc", "calculator", operation="add", b=1),
            node("again", "condition", operator=">=", value2=0),
        ],
        "links": [
            link("start", "result", "inc", "a"),
            link("inc", "result", "again", "value1"),
            link("again", "yes_output", "inc", "a"),
        ],
    }
    record = run_graph(api, document)
    assert record["status"] == "FAILED"
    assert "node execution limit" in record["error"] and "40" in record["error"]
    assert NodeExecution.objects.filter(status="RUNNING").count() == 0
    assert GraphExecution.objects.get().node_count == 40  # not one row past the cap
    assert NodeExecution.objects.count() == 40


def test_loop_through_a_condition_ends(api, worker):
    document = {
        "name": "Count to five",
        "nodes": [
            node("start", "input", name="n", value=0),
            node("inc", "calculator", operation="add", b=1, round_result=True),
            node("more", "condition", operator="<", value2=5),
            node("out", "output", name="final"),
        ],
        "links": [
            link("start", "result", "inc", "a"),
            link("inc", "result", "more", "value1"),
            link("more", "yes_output", "inc", "a"),
            link("more", "no_output", "out", "value"),
        ],
    }
    record = run_graph(api, document)
    assert record["status"] == "COMPLETED", record
    assert record["outputs"] == {"final": [5]}
    assert len(nodes_of(record, "inc")) == 5


def test_an_old_version_stays_executable(api, worker):
    graph = create_graph(api, greeting())
    changed = greeting()
    changed["nodes"][1]["input_default"]["format"] = "Goodbye {{ name }}!"
    assert api.put(f"/api/graphs/{graph['id']}/", changed, format="json").json()["version"] == 2
    latest = api.post(f"/api/graphs/{graph['id']}/execute/", {}, format="json").json()
    old = api.post(f"/api/graphs/{graph['id']}/execute/", {"version": 1}, format="json").json()
    assert wait_for_run(api, latest["id"])["outputs"] == {"greeting": ["Goodbye world!"]}
    old_record = wait_for_run(api, old["id"])
    assert (
        old_record["outputs"] == {"greeting": ["Hello world!"]} and old_record["graph_version"] == 1
    )


def test_a_repeated_task_changes_nothing(api, worker):
    record = run_graph(api, greeting())
    greet = NodeExecution.objects.get(node_id="greet")
    # Deliver the node's task again, as a broker would after a lost ack.
    again = run_node.apply_async(args=[greet.pk, record["id"]], ignore_result=False)
    again.get(timeout=30)
    greet.refresh_from_db()
    assert greet.attempts == 1 and greet.status == "COMPLETED"
    assert NodeExecution.objects.count() == 3
    assert api.get(f"/api/executions/{record['id']}/").json()["outputs"] == {
        "greeting": ["Hello world!"]
    }


def test_executions_list_filters_newest_first(api, worker):
    graph = create_graph(api, greeting())
    ids = [
        api.post(f"/api/graphs/{graph['id']}/execute/", {}, format="json").json()["id"]
        for _ in range(3)
    ]
    for eid in ids:
        wait_for_run(api, eid)
    listed = api.get(f"/api/executions/?graph={graph['id']}&status=COMPLETED").json()
    assert listed["count"] == 3 and [r["id"] for r in listed["results"]] == ids[::-1]
    assert api.get("/api/executions/?status=FAILED").json()["count"] == 0


def test_a_worker_killed_mid_node_loses_nothing(api, worker):
    """SIGKILL the pool process running a node: the broker redelivers the task (acks_late,
    reject_on_worker_lost), the redelivered task takes the node over, the run completes."""
    document = {
        "name": "Slow",
        "nodes": [
            node("wait", "sleep", seconds=3, value="done"),
            node("out", "output", name="result"),
        ],
        "links": [link("wait", "output", "out", "value")],
    }
    graph = create_graph(api, document)
    eid = api.post(f"/api/graphs/{graph['id']}/execute/", {}, format="json").json()["id"]
    deadline = time.monotonic() + 30
    while not NodeExecution.objects.filter(node_id="wait", status="RUNNING").exists():
        assert time.monotonic() < deadline, "the node never started"
        time.sleep(0.05)
    # The pool process running it, as the worker itself reports it.
    from config.celery import app

    running = NodeExecution.objects.get(node_id="wait")
    pids = []
    while not pids:
        assert time.monotonic() < deadline, "the worker never reported the task"
        active = app.control.inspect(timeout=2).active() or {}
        pids = [t["worker_pid"] for ts in active.values() for t in ts
                if t["id"] == running.task_id]  # fmt: skip
    os.kill(pids[0], signal.SIGKILL)
    record = wait_for_run(api, eid, timeout=60)
    assert record["status"] == "COMPLETED", record
    assert record["outputs"] == {"result": ["done"]}
    wait = nodes_of(record, "wait")[0]
    assert wait["attempts"] == 2 and wait["status"] == "COMPLETED"
    assert len(nodes_of(record, "out")) == 1
    # Ran twice, paid once: the node execution is the charge's idempotency key.
    references = list(
        CreditTransaction.objects.filter(node_execution_id=wait["id"]).values_list(
            "reference", flat=True
        )
    )
    assert references.count(f"usage:{wait['id']}") == 1
    assert wait["cost"] == -sum(
        CreditTransaction.objects.filter(node_execution_id=wait["id"]).values_list(
            "amount", flat=True
        )
    )
