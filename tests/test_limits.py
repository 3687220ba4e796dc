"""A run tree's limits hold before anything is written: node executions of the whole tree,
and its sub-graph runs; the run fails naming the limit and its setting."""

import pytest
from django.test import override_settings

from executions.models import GraphExecution, NodeExecution

from .conftest import create_graph, run_graph, wait_for_run
from .documents import link, node

pytestmark = pytest.mark.integration


def fan_out(items: int) -> dict:
    """step_through_items of `items` into one store_value each, each into an output."""
    return {
        "name": f"Fan-out of {items}",
        "nodes": [
            node("items", "step_through_items", items=list(range(items))),
            node("each", "store_value"),
            node("out", "output", name="n"),
        ],
        "links": [link("items", "item", "each", "input"), link("each", "output", "out", "value")],
    }


def self_calling_graph(api):
    """A graph that runs itself twice per level (a fork bomb), depth-limited only by the
    tree's limits and ENGINE_MAX_DEPTH."""
    graph = create_graph(api, {"name": "Fork", "nodes": [node("x", "store_value", input=1)]})
    document = {
        "name": "Fork",
        "nodes": [
            node("left", "agent_executor", graph_id=graph["id"]),
            node("right", "agent_executor", graph_id=graph["id"]),
        ],
    }
    assert api.put(f"/api/graphs/{graph['id']}/", document, format="json").status_code == 200
    return graph


# Below ENGINE_MAX_DEPTH (3 in the tests): every branch meets the tree's cap before its depth.
@override_settings(ENGINE_MAX_SUBGRAPH_RUNS=2)
def test_a_graph_that_runs_itself_twice_per_level_stops_at_the_tree_cap(api, worker):
    graph = self_calling_graph(api)
    run_id = api.post(f"/api/graphs/{graph['id']}/execute/", {}, format="json").json()["id"]
    record = wait_for_run(api, run_id)
    assert record["status"] == "FAILED"
    assert "ENGINE_MAX_SUBGRAPH_RUNS" in record["error"], record["error"]
    assert GraphExecution.objects.count() == 1 + 2
    root = GraphExecution.objects.get(pk=run_id)
    assert root.subgraph_count == 2
    assert all(r.status in ("FAILED", "CANCELLED") for r in GraphExecution.objects.all())


@override_settings(ENGINE_MAX_NODE_EXECUTIONS=30)
def test_node_executions_are_counted_for_the_whole_tree(api, worker):
    child = create_graph(api, fan_out(12))
    document = {
        "name": "Two fans",
        "nodes": [
            node("a", "agent_executor", graph_id=child["id"]),
            node("b", "agent_executor", graph_id=child["id"]),
        ],
    }
    record = run_graph(api, document)
    assert record["status"] == "FAILED"
    assert "ENGINE_MAX_NODE_EXECUTIONS" in record["error"], record["error"]
    root = GraphExecution.objects.get(pk=record["id"])
    assert root.node_count <= 30
    assert NodeExecution.objects.count() <= 30  # not one row past the cap, in any run


@override_settings(ENGINE_MAX_NODE_EXECUTIONS=20)
def test_a_fan_out_stops_before_the_row_that_would_pass_the_cap(api, worker):
    document = fan_out(15)
    record = run_graph(api, document)
    assert record["status"] == "FAILED" and "ENGINE_MAX_NODE_EXECUTIONS" in record["error"]
    # The 15 `each` run as one chord; its join would queue 15 `out`, 31 in all: none is
    # written (a batch fits whole or not at all).
    assert NodeExecution.objects.count() == 16
    assert not NodeExecution.objects.filter(node_id="out").exists()
    assert GraphExecution.objects.get(pk=record["id"]).active_count == 0  # exact at the end


# --- cancelling while nodes finish ----------------------------------------------------------


def test_cancels_racing_a_fan_out_never_fail_and_leave_exact_counters(api, worker):
    import random
    import time

    document = fan_out(300)
    graph = create_graph(api, document)
    rng = random.Random(7)
    runs = []
    for _ in range(8):
        run_id = api.post(f"/api/graphs/{graph['id']}/execute/", {}, format="json").json()["id"]
        time.sleep(rng.uniform(0.05, 0.4))
        answer = api.post(f"/api/executions/{run_id}/cancel/")  # a 500 would raise here
        assert answer.status_code in (200, 409), answer.json()
        runs.append((run_id, answer.status_code))
    for run_id, code in runs:
        record = wait_for_run(api, run_id)
        assert record["status"] == ("CANCELLED" if code == 200 else "COMPLETED")
    time.sleep(1.0)  # nodes that were running when cancelled finish (and change nothing)
    for run_id, _ in runs:
        run = GraphExecution.objects.get(pk=run_id)
        assert run.active_count == 0, run_id
        left = NodeExecution.objects.filter(
            execution_id=run_id, status__in=["QUEUED", "RUNNING", "INCOMPLETE"]
        )
        assert not left.exists(), list(left.values("node_id", "status"))
    _wait_for_empty_queues()  # the revoked messages are discarded as they come: let them


def _wait_for_empty_queues(timeout=120.0):
    import time

    from django.conf import settings

    from config.celery import app

    deadline = time.monotonic() + timeout
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        while any(
            channel.queue_declare(queue=q, passive=True).message_count
            for q in (settings.NODE_QUEUE, settings.ENGINE_QUEUE)
        ):
            assert time.monotonic() < deadline, "the worker did not drain its queues"
            time.sleep(0.5)


# --- a cancel stops only the nodes it means --------------------------------------------------


def _running_task(api, run_id, node_id, timeout=20):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ne = NodeExecution.objects.filter(
            execution_id=run_id, node_id=node_id, status="RUNNING"
        ).first()
        if ne is not None:
            time.sleep(0.3)  # inside the block by now
            return ne
        time.sleep(0.05)
    raise AssertionError(f"{node_id} never ran")


def test_a_cancel_stops_its_running_node_where_it_runs(api, worker):
    import time

    from config.celery import app

    graph = create_graph(api, {"name": "Long", "nodes": [node("wait", "sleep", seconds=30)]})
    run_id = api.post(f"/api/graphs/{graph['id']}/execute/", {}, format="json").json()["id"]
    ne = _running_task(api, run_id, "wait")
    assert api.post(f"/api/executions/{run_id}/cancel/").status_code == 200
    deadline = time.monotonic() + 10
    while any(
        t["id"] == ne.task_id for ts in (app.control.inspect().active() or {}).values() for t in ts
    ):
        assert time.monotonic() < deadline, "the cancelled node still holds its worker"
        time.sleep(0.2)
    assert NodeExecution.objects.get(pk=ne.pk).status == "CANCELLED"


def test_a_stop_signal_that_reaches_another_node_changes_nothing(api, worker):
    """Celery's race: the signal meant for a node that just finished reaches the process
    that now runs another (another user's) node. That node runs on, once."""
    from config.celery import app

    graph = create_graph(api, {"name": "Other", "nodes": [node("wait", "sleep", seconds=2)]})
    run_id = api.post(f"/api/graphs/{graph['id']}/execute/", {}, format="json").json()["id"]
    ne = _running_task(api, run_id, "wait")
    app.control.broadcast("stop_nodes", arguments={"task_ids": [ne.task_id]})  # not marked
    record = wait_for_run(api, run_id)
    assert record["status"] == "COMPLETED"
    assert NodeExecution.objects.get(pk=ne.pk).attempts == 1
