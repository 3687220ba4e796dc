"""Presets: saved inputs for a graph (issue 17), and runs started with them."""

import pytest

from graphs.models import Preset

from .conftest import create_graph, wait_for_run
from .documents import greeting

pytestmark = pytest.mark.django_db


def two_inputs():
    """A graph with a required input and one with a default."""
    return {
        "name": "Two inputs",
        "nodes": [
            {"id": "who", "block": "input", "input_default": {"name": "who"}},
            {"id": "how", "block": "input", "input_default": {"name": "how", "value": "Hello"}},
            {"id": "greet", "block": "text_template",
             "input_default": {"format": "{{ how }} {{ who }}!"}},
            {"id": "out", "block": "output", "input_default": {"name": "greeting"}},
        ],
        "links": [
            {"source_id": "who", "source_name": "result", "sink_id": "greet",
             "sink_name": "values_#_who"},
            {"source_id": "how", "source_name": "result", "sink_id": "greet",
             "sink_name": "values_#_how"},
            {"source_id": "greet", "source_name": "output", "sink_id": "out",
             "sink_name": "value"},
        ],
    }  # fmt: skip


def test_presets_are_created_listed_changed_and_deleted(api):
    graph = create_graph(api, two_inputs())
    url = f"/api/graphs/{graph['id']}/presets/"
    created = api.post(url, {"name": "Ada", "inputs": {"who": "Ada"}}, format="json")
    assert created.status_code == 201, created.content
    preset = created.json()
    assert preset["graph_id"] == graph["id"] and preset["graph_version"] is None
    assert preset["name"] == "Ada" and preset["inputs"] == {"who": "Ada"}
    listed = api.get(url).json()
    assert [p["id"] for p in listed["results"]] == [preset["id"]]
    changed = api.patch(
        f"/api/presets/{preset['id']}/", {"inputs": {"who": "Grace"}, "graph_version": 1},
        format="json",
    )  # fmt: skip
    assert changed.status_code == 200, changed.content
    assert changed.json()["inputs"] == {"who": "Grace"} and changed.json()["graph_version"] == 1
    assert api.get(f"/api/presets/{preset['id']}/").json()["name"] == "Ada"
    assert api.delete(f"/api/presets/{preset['id']}/").status_code == 204
    assert api.get(f"/api/presets/{preset['id']}/").status_code == 404


@pytest.mark.parametrize(
    "body, field",
    [
        ({"inputs": {"who": "x"}}, "name"),
        ({"name": "n", "inputs": {"nobody": "x"}}, "inputs"),  # an unknown input
        ({"name": "n", "inputs": {}}, "who"),  # a required input missing
        ({"name": "n", "inputs": {"who": "x"}, "graph_version": 9}, "graph_version"),
        ({"name": "n", "inputs": "who"}, "inputs"),
        ({"name": "x" * 201, "inputs": {"who": "x"}}, "name"),
    ],
)
def test_a_preset_that_could_not_start_a_run_is_a_400_and_stores_nothing(api, body, field):
    graph = create_graph(api, two_inputs())
    response = api.post(f"/api/graphs/{graph['id']}/presets/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.content.decode()
    assert not Preset.objects.exists()


def test_a_second_preset_of_the_same_name_is_a_409(api):
    graph = create_graph(api, two_inputs())
    url = f"/api/graphs/{graph['id']}/presets/"
    assert api.post(url, {"name": "Ada", "inputs": {"who": "A"}}, format="json").status_code == 201
    again = api.post(url, {"name": "Ada", "inputs": {"who": "B"}}, format="json")
    assert again.status_code == 409 and "Ada" in again.json()["detail"]
    assert Preset.objects.get().inputs == {"who": "A"}


def test_another_users_presets_are_not_found_and_not_usable(api, other_api):
    graph = create_graph(api, two_inputs())
    preset = api.post(
        f"/api/graphs/{graph['id']}/presets/", {"name": "Ada", "inputs": {"who": "Ada"}},
        format="json",
    ).json()  # fmt: skip
    for method in ("get", "patch", "delete"):
        assert getattr(other_api, method)(f"/api/presets/{preset['id']}/").status_code == 404
    assert other_api.get(f"/api/graphs/{graph['id']}/presets/").status_code == 404
    theirs = create_graph(other_api, two_inputs())
    started = other_api.post(
        f"/api/graphs/{theirs['id']}/execute/", {"preset": preset["id"]}, format="json"
    )
    assert started.status_code == 400 and "preset" in started.json()["detail"]
    assert Preset.objects.get().inputs == {"who": "Ada"}


def test_deleting_a_graph_deletes_its_presets(api):
    graph = create_graph(api, two_inputs())
    api.post(f"/api/graphs/{graph['id']}/presets/", {"name": "A", "inputs": {"who": "A"}},
             format="json")  # fmt: skip
    assert api.delete(f"/api/graphs/{graph['id']}/").status_code == 204
    assert not Preset.objects.exists()


@pytest.mark.integration
def test_a_run_takes_its_presets_inputs_and_version_with_the_requests_on_top(api, worker):
    graph = create_graph(api, two_inputs())
    document = two_inputs()
    document["nodes"][2]["input_default"]["format"] = "{{ how }}, {{ who }}. (v2)"
    assert api.put(f"/api/graphs/{graph['id']}/", document, format="json").status_code == 200
    preset = api.post(
        f"/api/graphs/{graph['id']}/presets/",
        {"name": "Ada on v1", "inputs": {"who": "Ada", "how": "Hi"}, "graph_version": 1},
        format="json",
    ).json()
    execute = f"/api/graphs/{graph['id']}/execute/"
    plain = api.post(execute, {"preset": preset["id"]}, format="json").json()
    overridden = api.post(
        execute, {"preset": preset["id"], "inputs": {"how": "Bye"}}, format="json"
    ).json()
    latest = api.post(
        execute, {"preset": preset["id"], "version": 2}, format="json"
    ).json()  # fmt: skip
    assert wait_for_run(api, plain["id"])["outputs"] == {"greeting": ["Hi Ada!"]}
    assert wait_for_run(api, overridden["id"])["outputs"] == {"greeting": ["Bye Ada!"]}
    assert wait_for_run(api, latest["id"])["outputs"] == {"greeting": ["Hi, Ada. (v2)"]}
    assert wait_for_run(api, plain["id"])["inputs"] == {"who": "Ada", "how": "Hi"}


def test_a_preset_with_no_inputs_of_a_graph_that_needs_none(api):
    graph = create_graph(api, greeting())
    response = api.post(f"/api/graphs/{graph['id']}/presets/", {"name": "plain"}, format="json")
    assert response.status_code == 201 and response.json()["inputs"] == {}


def test_a_schedule_runs_its_preset_as_it_is_when_it_fires(api):
    """A schedule names a preset: it is checked with the preset's inputs under its own,
    and each fire takes the preset as it is then (a change reaches the next run)."""
    from datetime import UTC, datetime

    from executions.models import GraphExecution
    from schedules.models import Schedule
    from schedules.services import schedule_fire

    graph = create_graph(api, two_inputs())
    preset = api.post(
        f"/api/graphs/{graph['id']}/presets/", {"name": "Ada", "inputs": {"who": "Ada"}},
        format="json",
    ).json()  # fmt: skip
    body = {"graph_id": graph["id"], "cron": "0 * * * *", "preset_id": preset["id"]}
    missing = api.post("/api/schedules/", {**body, "preset_id": None}, format="json")
    assert missing.status_code == 400 and "who" in missing.json()["detail"]  # needs the preset
    created = api.post("/api/schedules/", {**body, "inputs": {"how": "Hey"}}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["preset_id"] == preset["id"]
    schedule = Schedule.objects.get(pk=created.json()["id"])
    Schedule.objects.filter(pk=schedule.pk).update(armed_at=datetime(2026, 6, 1, 9, 59, tzinfo=UTC))
    first = schedule_fire(schedule.pk, datetime(2026, 6, 1, 10, 0, 1, tzinfo=UTC))
    assert first.outcome == "started", first.detail
    assert GraphExecution.objects.get(pk=first.execution_id).inputs == {"who": "Ada", "how": "Hey"}
    api.patch(f"/api/presets/{preset['id']}/", {"inputs": {"who": "Grace"}}, format="json")
    GraphExecution.objects.filter(pk=first.execution_id).update(status="COMPLETED")
    second = schedule_fire(schedule.pk, datetime(2026, 6, 1, 11, 0, 1, tzinfo=UTC))
    assert second.outcome == "started", second.detail
    assert GraphExecution.objects.get(pk=second.execution_id).inputs == {
        "who": "Grace",
        "how": "Hey",
    }


def test_a_preset_a_schedule_runs_with_is_not_deleted_but_its_graph_is(api):
    graph = create_graph(api, two_inputs())
    preset = api.post(
        f"/api/graphs/{graph['id']}/presets/", {"name": "Ada", "inputs": {"who": "Ada"}},
        format="json",
    ).json()  # fmt: skip
    body = {"graph_id": graph["id"], "cron": "0 * * * *", "preset_id": preset["id"]}
    assert api.post("/api/schedules/", body, format="json").status_code == 201
    refused = api.delete(f"/api/presets/{preset['id']}/")
    assert refused.status_code == 409 and "schedule" in refused.json()["detail"]
    assert Preset.objects.filter(pk=preset["id"]).exists()
    assert api.delete(f"/api/graphs/{graph['id']}/").status_code == 204
    assert not Preset.objects.exists()


def test_a_schedule_cannot_name_another_graphs_preset(api):
    graph = create_graph(api, two_inputs())
    other = create_graph(api, two_inputs())
    preset = api.post(
        f"/api/graphs/{other['id']}/presets/", {"name": "Ada", "inputs": {"who": "Ada"}},
        format="json",
    ).json()  # fmt: skip
    body = {"graph_id": graph["id"], "cron": "0 * * * *", "preset_id": preset["id"],
            "inputs": {"who": "x"}}  # fmt: skip
    refused = api.post("/api/schedules/", body, format="json")
    assert refused.status_code == 400 and "preset_id" in refused.json()["detail"]
