"""Replay batches (issue 19), end to end on a real worker: twenty failed runs replayed on a
fixed version under the per-user cap, once however often it is asked, and cancellable."""

import pytest
from django.test import override_settings

from executions.models import GraphExecution

from .conftest import create_graph, wait_for_run
from .documents import link, node
from .test_control import execute, wait_until

pytestmark = pytest.mark.integration


def flaky(fix="{{ x | no_such_filter }}"):
    return {
        "name": "Flaky",
        "nodes": [
            node("in", "input", name="x", value="a"),
            node("step", "text_template", format=fix),
            node("out", "output", name="o"),
        ],
        "links": [
            link("in", "result", "step", "values_#_x"),
            link("step", "output", "out", "value"),
        ],
    }


@override_settings(ENGINE_MAX_RUNNING_PER_USER=5)
def test_twenty_failed_runs_replay_on_a_fixed_version_under_the_cap_once(api, user, worker):
    graph = create_graph(api, flaky())
    failed = [execute(api, graph, {"x": f"v{i}"}) for i in range(20)]
    for eid in failed:
        assert wait_for_run(api, eid)["status"] == "FAILED"
    api.put(f"/api/graphs/{graph['id']}/", flaky(fix="{{ x }}!"), format="json")
    body = {"status": "FAILED", "version": 2, "from": "failed_nodes"}
    preview = api.post(f"/api/graphs/{graph['id']}/replay/preview/", body, format="json")
    assert preview.status_code == 200, preview.json()
    assert preview.json()["runs"] == 20 and preview.json()["run"] == 40  # step and out each
    made = api.post(f"/api/graphs/{graph['id']}/replay/", body, format="json")
    assert made.status_code == 201, made.json()
    again = api.post(f"/api/graphs/{graph['id']}/replay/", body, format="json")
    assert again.status_code == 200 and again.json()["id"] == made.json()["id"]
    batch = made.json()["id"]
    assert len(made.json()["runs"]) == 20
    wait_until(lambda: api.get(f"/api/replays/{batch}/").json()["done"], timeout=90)
    shown = api.get(f"/api/replays/{batch}/").json()
    assert shown["counts"] == {"COMPLETED": 20, "not_started": 0}, shown
    outputs = sorted(wait_for_run(api, r)["outputs"]["o"][0] for r in shown["runs"])
    assert outputs == sorted(f"v{i}!" for i in range(20))
    assert GraphExecution.objects.filter(graph_id=graph["id"]).count() == 40  # no more


def test_a_replay_batch_is_cancelled_as_a_whole(api, user, worker, other_api):
    def slow_then_broken(seconds):
        return {
            "name": "Slow then broken",
            "nodes": [
                node("nap", "sleep", seconds=seconds),
                node("bad", "calculator", operation="divide", a=1, b=0),
            ],
            "links": [link("nap", "output", "bad", "a")],
        }

    graph = create_graph(api, slow_then_broken(0))
    assert wait_for_run(api, execute(api, graph))["status"] == "FAILED"
    api.put(f"/api/graphs/{graph['id']}/", slow_then_broken(30), format="json")  # version 2
    made = api.post(
        f"/api/graphs/{graph['id']}/replay/", {"version": 2, "from": "start"}, format="json"
    )
    assert made.status_code == 201, made.json()
    batch = made.json()["id"]
    assert other_api.get(f"/api/replays/{batch}/").status_code == 404
    assert other_api.post(f"/api/replays/{batch}/cancel/").status_code == 404
    cancelled = api.post(f"/api/replays/{batch}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["cancelled"] is True
    assert cancelled.json()["counts"] == {"CANCELLED": 1, "not_started": 0}
    assert cancelled.json()["done"] is True


def test_cancelled_runs_replay_from_the_nodes_the_cancel_stopped(api, user, worker):
    from executions.models import NodeExecution

    document = {
        "name": "Cancelled midway",
        "nodes": [
            node("in", "input", name="x", value="a"),
            node("first", "text_template", format="<{{ x }}>"),
            node("nap", "sleep", seconds=3),
            node("out", "output", name="o"),
        ],
        "links": [
            link("in", "result", "first", "values_#_x"),
            link("first", "output", "nap", "value"),
            link("nap", "output", "out", "value"),
        ],
    }
    graph = create_graph(api, document)
    eid = execute(api, graph)
    wait_until(lambda: NodeExecution.objects.filter(execution_id=eid, node_id="nap").exists())
    assert api.post(f"/api/executions/{eid}/cancel/").status_code in (200, 202)
    assert wait_for_run(api, eid)["status"] == "CANCELLED"
    url = f"/api/graphs/{graph['id']}/replay/"
    body = {"status": "CANCELLED", "from": "failed_nodes"}
    preview = api.post(url + "preview/", body, format="json").json()
    assert (preview["runs"], preview["reused"], preview["run"]) == (1, 2, 2)  # nap and out
    from_start = api.post(url + "preview/", {**body, "from": "start"}, format="json").json()
    assert (from_start["reused"], from_start["run"]) == (0, 4)
    made = api.post(url, body, format="json").json()
    record = wait_for_run(api, made["runs"][0])
    assert record["status"] == "COMPLETED" and record["outputs"] == {"o": ["<a>"]}
    reused = {n["node_id"] for n in record["node_executions"] if n["reused_from"]}
    assert reused == {"in", "first"}
