"""The REST API: auth, graphs, validation errors, scoping, malformed and oversized input."""

import json
import uuid

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from executions.models import GraphExecution
from graphs.models import Graph, GraphVersion

from .documents import greeting, link, node

pytestmark = pytest.mark.django_db


def test_token_auth_round_trip(user):
    client = APIClient()
    assert client.get("/api/graphs/").status_code == 401
    bad = client.post(
        "/api/auth/token/", {"username": user.username, "password": "nope"}, format="json"
    )
    assert bad.status_code == 401 and "password" in bad.json()["detail"]
    assert (
        client.post("/api/auth/token/", {"username": user.username}, format="json").status_code
        == 400
    )
    ok = client.post(
        "/api/auth/token/", {"username": user.username, "password": "pw-123456"}, format="json"
    )
    assert ok.status_code == 200
    client.credentials(HTTP_AUTHORIZATION=f"Token {ok.json()['token']}")
    assert client.get("/api/graphs/").status_code == 200
    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert client.get("/api/graphs/").status_code == 401


def test_blocks_catalogue_lists_every_block_with_schemas(api):
    blocks = {b["name"]: b for b in api.get("/api/blocks/").json()}
    assert {
        "input",
        "output",
        "store_value",
        "text_template",
        "condition",
        "step_through_items",
        "calculator",
        "sleep",
        "http_request",
    } <= set(blocks)
    calc = blocks["calculator"]
    assert set(calc["input_schema"]["properties"]) == {"operation", "a", "b", "round_result"}
    assert "error" in calc["output_schema"]["properties"]
    assert blocks["input"]["static_output"] is True and calc["cost"] == 0


def test_create_read_update_versions_delete(api):
    created = api.post("/api/graphs/", greeting(), format="json").json()
    assert created["version"] == 1 and created["nodes"][1]["id"] == "greet"
    gid = created["id"]
    # saving the same document again makes no new version
    assert api.put(f"/api/graphs/{gid}/", greeting(), format="json").json()["version"] == 1
    changed = greeting()
    changed["nodes"][1]["input_default"]["format"] = "Hi {{ name }}"
    assert api.put(f"/api/graphs/{gid}/", changed, format="json").json()["version"] == 2
    assert (
        api.get(f"/api/graphs/{gid}/").json()["nodes"][1]["input_default"]["format"]
        == "Hi {{ name }}"
    )
    v1 = api.get(f"/api/graphs/{gid}/?version=1").json()
    assert v1["version"] == 1 and v1["nodes"][1]["input_default"]["format"] == "Hello {{ name }}!"
    versions = api.get(f"/api/graphs/{gid}/versions/").json()
    assert versions["count"] == 2 and [v["version"] for v in versions["results"]] == [2, 1]
    listed = api.get("/api/graphs/").json()
    assert listed["count"] == 1 and listed["results"][0]["version"] == 2
    assert api.get(f"/api/graphs/{gid}/?version=9").status_code == 404
    assert api.get(f"/api/graphs/{gid}/?version=x").status_code == 400
    assert api.delete(f"/api/graphs/{gid}/").status_code == 204
    assert api.get(f"/api/graphs/{gid}/").status_code == 404
    assert not GraphVersion.objects.exists()


def problems_of(response):
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["detail"]
    return body["errors"]


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda d: d["nodes"].append(node("x", "no_such_block")), {"node_id": "x"}),
        (lambda d: d["nodes"].append(node("greet", "output", name="n")), {"node_id": "greet"}),
        (
            lambda d: d["links"].append(link("ghost", "result", "out", "value")),
            {"node_id": "ghost"},
        ),
        (
            lambda d: d["links"].append(link("who", "result", "ghost", "value")),
            {"node_id": "ghost"},
        ),
        (
            lambda d: d["links"].append(link("who", "nope", "out", "value")),
            {"node_id": "who", "pin": "nope"},
        ),
        (
            lambda d: d["links"].append(link("who", "result", "out", "nope")),
            {"node_id": "out", "pin": "nope"},
        ),
        (
            lambda d: d["nodes"].append(node("c", "calculator", a="abc", b=1)),
            {"node_id": "c", "pin": "a"},
        ),
        (lambda d: d["nodes"].append(node("c", "calculator", a=1)), {"node_id": "c", "pin": "b"}),
        (
            lambda d: d["nodes"].append(node("s", "sleep", seconds=-1)),
            {"node_id": "s", "pin": "seconds"},
        ),
        (lambda d: d["nodes"].append(node("o", "output")), {"node_id": "o", "pin": "name"}),
        (
            lambda d: d["nodes"][1]["input_default"].update(nope=1),
            {"node_id": "greet", "pin": "nope"},
        ),
        (lambda d: d["nodes"].append({"id": "bad id!", "block": "output"}), {"node_index": 3}),
        (lambda d: d["links"].append(dict(d["links"][0])), {"node_id": "greet"}),
        (lambda d: d.update(nodes=[]), {"field": "nodes"}),
        (lambda d: d.update(name=""), {"field": "name"}),
        (
            lambda d: d["links"].append(link("who", "result_$_x", "out", "value")),
            {"node_id": "who", "pin": "result_$_x"},
        ),
        (
            lambda d: d["links"].append(link("who", "result", "greet", "values_#_a_#_")),
            {"node_id": "greet", "pin": "values_#_a_#_"},
        ),
        (
            lambda d: d["links"].append(link("who", "result", "greet", "values_#_a_$_-1")),
            {"node_id": "greet", "pin": "values_#_a_$_-1"},
        ),
        (
            lambda d: d["nodes"][1]["input_default"].update({"format_#_x": 1}),
            {"node_id": "greet", "pin": "format_#_x"},
        ),
    ],
    ids=[
        "unknown-block",
        "duplicate-node",
        "link-from-missing",
        "link-to-missing",
        "unknown-source-pin",
        "unknown-sink-pin",
        "wrong-type",
        "missing-required",
        "constraint",
        "missing-required-name",
        "unknown-default-pin",
        "bad-node-id",
        "duplicate-link",
        "no-nodes",
        "no-name",
        "source-path-index-not-integer",
        "sink-path-empty-key",
        "sink-path-negative-index",
        "path-into-text-pin",
    ],
)
def test_every_validation_problem_is_a_400_naming_where(api, mutate, expected):
    document = greeting()
    mutate(document)
    problems = problems_of(api.post("/api/graphs/", document, format="json"))
    assert any(expected.items() <= p.items() for p in problems), problems
    assert not Graph.objects.exists()


def test_invalid_update_stores_nothing(api):
    gid = api.post("/api/graphs/", greeting(), format="json").json()["id"]
    document = greeting()
    document["nodes"].append(node("x", "no_such_block"))
    problems_of(api.put(f"/api/graphs/{gid}/", document, format="json"))
    assert GraphVersion.objects.count() == 1


def test_execute_validates_inputs_and_creates_nothing_on_error(api):
    document = greeting()
    del document["nodes"][0]["input_default"]["value"]
    gid = api.post("/api/graphs/", document, format="json").json()["id"]
    missing = problems_of(api.post(f"/api/graphs/{gid}/execute/", {}, format="json"))
    assert missing[0]["input"] == "who"
    unknown = problems_of(
        api.post(f"/api/graphs/{gid}/execute/", {"inputs": {"who": "a", "x": 1}}, format="json")
    )
    assert unknown[0]["input"] == "x"
    assert (
        api.post(f"/api/graphs/{gid}/execute/", {"inputs": "nope"}, format="json").status_code
        == 400
    )
    assert (
        api.post(
            f"/api/graphs/{gid}/execute/", {"inputs": {}, "version": 7}, format="json"
        ).status_code
        == 404
    )
    assert (
        api.post(f"/api/graphs/{gid}/execute/", {"version": "x"}, format="json").status_code == 400
    )
    assert not GraphExecution.objects.exists()


def test_other_users_things_are_not_found(api, other_api):
    gid = api.post("/api/graphs/", greeting(), format="json").json()["id"]
    eid = api.post(f"/api/graphs/{gid}/execute/", {}, format="json").json()["id"]
    for path in (f"/api/graphs/{gid}/", f"/api/graphs/{gid}/versions/", f"/api/executions/{eid}/"):
        response = other_api.get(path)
        assert response.status_code == 404 and "Hello" not in response.content.decode()
    assert other_api.put(f"/api/graphs/{gid}/", greeting(), format="json").status_code == 404
    assert other_api.delete(f"/api/graphs/{gid}/").status_code == 404
    assert other_api.post(f"/api/graphs/{gid}/execute/", {}, format="json").status_code == 404
    assert other_api.get("/api/executions/").json()["count"] == 0
    assert other_api.get("/api/graphs/").json()["count"] == 0
    assert Graph.objects.count() == 1 and GraphExecution.objects.count() == 1


def test_malformed_bodies_and_ids_are_4xx(api):
    raw = APIClient()
    raw.force_authenticate(api.handler._force_user)
    for body in ("{not json", "[1, 2", "NaN", '{"name": NaN}', "\xff\xfe"):
        response = raw.post("/api/graphs/", data=body, content_type="application/json")
        assert response.status_code == 400, body
    assert api.post("/api/graphs/", [1, 2], format="json").status_code == 400
    assert api.post("/api/graphs/", {"name": "x", "nodes": "abc"}, format="json").status_code == 400
    assert (
        api.post("/api/graphs/", {"name": "x", "nodes": [1, "a", None]}, format="json").status_code
        == 400
    )
    assert (
        api.post(
            "/api/graphs/", {"name": "x", "nodes": [{"id": 5, "block": []}]}, format="json"
        ).status_code
        == 400
    )
    bad_links = {"name": "x", "nodes": [node("a", "output", name="n")], "links": [{"source_id": 1}]}
    assert api.post("/api/graphs/", bad_links, format="json").status_code == 400
    assert api.get("/api/graphs/not-a-uuid/").status_code == 404
    assert api.get(f"/api/executions/{uuid.uuid4()}/").status_code == 404
    assert api.get("/api/executions/?status=BOGUS").status_code == 400
    assert api.get("/api/executions/?graph=nope").status_code == 400
    assert api.post("/api/graphs/", data="x", content_type="text/plain").status_code == 415
    assert not Graph.objects.exists()


@override_settings(API_MAX_BODY_BYTES=2000)
def test_oversized_body_is_413(api):
    document = greeting()
    document["description"] = "x" * 5000
    response = api.post("/api/graphs/", document, format="json")
    assert response.status_code == 413 and "too large" in response.json()["detail"]
    assert not Graph.objects.exists()


@override_settings(ENGINE_MAX_GRAPH_NODES=3)
def test_too_many_nodes_is_400(api):
    document = greeting()
    document["nodes"].append(node("x", "output", name="x", value=1))
    assert any(
        "too many nodes" in p["message"]
        for p in problems_of(api.post("/api/graphs/", document, format="json"))
    )


def test_openapi_schema_and_docs(api):
    schema = api.get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = json.loads(schema.content)["paths"]
    assert "/api/graphs/{graph_id}/execute/" in paths and "/api/executions/{execution_id}/" in paths
    assert api.get("/api/docs/").status_code == 200


def test_health_ready_and_unknown_paths_are_json(client, settings):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200, ready.json()
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok", "rabbitmq": "ok"}
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    down = client.get("/ready")
    assert down.status_code == 503 and down.json()["checks"]["redis"].startswith("unreachable")
    assert client.get("/nowhere").status_code == 404


def test_execute_is_accepted_even_when_the_broker_is_unreachable(
    api, monkeypatch, django_capture_on_commit_callbacks
):
    from kombu.exceptions import OperationalError

    from executions import dispatch
    from executions.models import OutboxMessage

    def broker_down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(dispatch, "send_message", broker_down)
    gid = api.post("/api/graphs/", greeting(), format="json").json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/graphs/{gid}/execute/", {}, format="json")
    assert response.status_code == 201
    run = GraphExecution.objects.get()
    assert run.status == "RUNNING"  # started in the request; its first nodes wait QUEUED
    kept = OutboxMessage.objects.get(body__run=str(run.pk))  # for the relay to send
    assert kept.kind == "nodes"


def test_hostile_headers_and_query_strings_are_4xx(api, user):
    from accounts.services import token_issue

    raw = APIClient()
    for header in ("Token ab\x00cd", "Token " + "a" * 5000, "Token zz"):
        raw.credentials(HTTP_AUTHORIZATION=header)
        assert raw.get("/api/graphs/").status_code == 401
    raw.credentials(HTTP_AUTHORIZATION=f"Token {token_issue(user=user)[0]}")
    gid = raw.post("/api/graphs/", greeting(), format="json").json()["id"]
    raw.post(f"/api/graphs/{gid}/execute/", {}, format="json")
    for query in ("status=%00", "graph=%00"):
        assert raw.get(f"/api/executions/?{query}").status_code == 400
    huge = raw.get("/api/executions/?limit=99999999999999999999&offset=-5")
    assert huge.status_code == 200 and len(huge.json()["results"]) == 1
    assert raw.get(f"/api/graphs/{gid}/?version=%00").status_code == 400


@pytest.mark.parametrize(
    "value, reason",
    [
        ("1e400", "finite"),
        ('"a\\u0000b"', "NUL"),
        ('"\\ud800"', "surrogates"),
        ("[" * 990 + "]" * 990, "nested"),
        ('{"a":' * 150 + "1" + "}" * 150, "nested"),
        ("9" * 5000, "digits"),
    ],
    ids=["infinite", "nul", "surrogate", "deep-array", "deep-object", "huge-int"],
)
def test_json_postgres_cannot_store_is_refused_with_400(api, value, reason):
    raw = APIClient()
    raw.force_authenticate(api.handler._force_user)
    prefix = (
        '{"name": "x", "nodes": [{"id": "o", "block": "output", "input_default": {"name": "n", '
    )
    body = prefix + '"value": ' + value + "}}]}"
    response = raw.post("/api/graphs/", data=body, content_type="application/json")
    assert response.status_code == 400 and reason in response.json()["detail"]
    assert not Graph.objects.exists()


def test_control_endpoints_are_scoped_and_answer_409_on_state(api, other_api):
    gid = api.post("/api/graphs/", greeting(), format="json").json()["id"]
    eid = api.post(f"/api/graphs/{gid}/execute/", {}, format="json").json()["id"]
    for action in ("cancel", "pause", "resume"):
        assert other_api.post(f"/api/executions/{eid}/{action}/").status_code == 404
        assert api.get(f"/api/executions/{eid}/{action}/").status_code == 405
    # Started in the request (no worker here runs its nodes).
    assert api.post(f"/api/executions/{eid}/resume/").status_code == 409  # not paused
    assert api.post(f"/api/executions/{eid}/pause/").json()["status"] == "PAUSED"
    assert api.post(f"/api/executions/{eid}/pause/").status_code == 409
    assert api.post(f"/api/executions/{eid}/resume/").json()["status"] == "RUNNING"
    assert api.post(f"/api/executions/{eid}/cancel/").json()["status"] == "CANCELLED"
    assert api.post(f"/api/executions/{eid}/cancel/").status_code == 409
    assert GraphExecution.objects.get().status == "CANCELLED"


@pytest.mark.parametrize("timeout", [0, -1, 1.5, "10", True, 10**6])
def test_a_bad_node_timeout_is_a_400(api, timeout):
    document = greeting()
    document["nodes"][1]["timeout"] = timeout
    problems = problems_of(api.post("/api/graphs/", document, format="json"))
    assert problems[0]["node_id"] == "greet" and problems[0]["field"] == "timeout"


def test_a_node_timeout_is_stored_and_returned(api):
    document = greeting()
    document["nodes"][1]["timeout"] = 12
    created = api.post("/api/graphs/", document, format="json").json()
    assert created["nodes"][1]["timeout"] == 12 and created["nodes"][0]["timeout"] is None


@pytest.mark.django_db
def test_every_response_shape_is_its_serializer_and_drops_nothing(api, user):
    """Responses are rendered through the serializers the schema is made from: a key a
    selector adds without its serializer would be dropped silently. Nothing is."""
    from common.api import rendered
    from credits.apis import TransactionSerializer
    from credits.models import CreditTransaction
    from credits.selectors import transaction_record
    from executions.models import GraphExecution, NodeExecution
    from executions.selectors import execution_record, node_execution_record
    from executions.serializers import ExecutionSerializer, NodeExecutionSerializer
    from graphs.models import GraphVersion
    from graphs.selectors import graph_record
    from graphs.serializers import GraphSerializer
    from schedules.apis import ScheduleSerializer
    from schedules.models import Schedule
    from schedules.selectors import schedule_record

    graph = api.post("/api/graphs/", greeting(), format="json").json()
    run = GraphExecution.objects.create(
        graph_id=graph["id"], graph_version=GraphVersion.objects.get(graph_id=graph["id"]),
        user=user, status="QUEUED",
    )  # fmt: skip
    NodeExecution.objects.create(execution=run, node_id="greet", block="text_template")
    api.post("/api/schedules/", {"graph_id": graph["id"], "cron": "0 3 * * *"}, format="json")
    cases = [
        (ExecutionSerializer, execution_record(run)),
        (NodeExecutionSerializer, node_execution_record(NodeExecution.objects.get(execution=run))),
        (GraphSerializer, graph_record(GraphVersion.objects.get(graph_id=graph["id"]))),
        (ScheduleSerializer, schedule_record(Schedule.objects.get(graph_id=graph["id"]))),
        (TransactionSerializer, transaction_record(CreditTransaction.objects.filter(user=user)[0])),
    ]
    for serializer, record in cases:
        assert set(rendered(serializer, record)) == set(record), serializer.__name__


def test_the_runs_list_reads_live_runs_figures_in_one_query_whatever_their_number(api, user):
    """A page of live runs shows each one's figures as they stand, counted for the whole
    page in one statement (not one per run)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from executions.models import NodeExecution

    graph = api.post("/api/graphs/", greeting(), format="json").json()
    version = GraphVersion.objects.get(graph_id=graph["id"])

    def live_runs(count):
        for i in range(count):
            run = GraphExecution.objects.create(
                graph_id=graph["id"], graph_version=version, user=user, status="RUNNING"
            )
            for status, cost in (("COMPLETED", 2), ("FAILED", 3))[: 1 + i % 2]:
                NodeExecution.objects.create(
                    execution=run, node_id="greet", block="text_template", status=status,
                    cost=cost,
                )  # fmt: skip

    def listed():
        with CaptureQueriesContext(connection) as queries:
            page = api.get("/api/executions/").json()["results"]
        return page, len(queries)

    live_runs(2)
    _, few_queries = listed()
    live_runs(6)
    many, many_queries = listed()
    assert len(many) == 8 and many_queries == few_queries
    figures = sorted((r["stats"]["node_count"], r["stats"]["node_error_count"], r["stats"]["cost"])
                     for r in many)  # fmt: skip
    assert figures == [(1, 0, 2)] * 4 + [(2, 1, 5)] * 4


def test_problems_say_what_to_do(api):
    document = greeting()
    document["nodes"][1]["block"] = "text_templat"  # a typo
    problems = problems_of(api.post("/api/graphs/", document, format="json"))
    assert len(problems) == 1, problems  # no follow-on errors about links to that node
    assert problems[0]["message"] == "unknown block 'text_templat'; did you mean 'text_template'?"

    document = greeting()
    document["links"][0]["sink_name"] = "valuez_#_name"
    (problem,) = problems_of(api.post("/api/graphs/", document, format="json"))
    assert "did you mean 'values'?" in problem["message"]
    assert "(its input pins: format, values)" in problem["message"]

    document = greeting()
    document["links"][0]["source_name"] = "resultt"
    (problem,) = problems_of(api.post("/api/graphs/", document, format="json"))
    assert "(its output pins: error, result)" in problem["message"]

    document = greeting()
    document["nodes"][1]["input_default"]["format"] = "Hello {{ name }} from {{ place }}!"
    (problem,) = problems_of(api.post("/api/graphs/", document, format="json"))
    assert problem == {
        "node_id": "greet", "pin": "format",
        "message": "template variable 'place' is never given: link a value to "
        "'values_#_place' or set it in `values`",
    }  # fmt: skip
    document["nodes"][1]["input_default"]["values"] = {"place": "Paris"}
    assert api.post("/api/graphs/", document, format="json").status_code == 201


def test_every_400_lists_its_errors(api):
    graph = api.post("/api/graphs/", greeting(), format="json").json()
    bad_field = api.post(f"/api/graphs/{graph['id']}/execute/", {"budget": 0}, format="json")
    assert bad_field.status_code == 400
    (error,) = bad_field.json()["errors"]
    assert error["field"] == "budget" and "greater than or equal to 1" in error["message"]
    assert bad_field.json()["detail"].startswith("budget: ")
    malformed = api.generic("POST", "/api/graphs/", "{not json", content_type="application/json")
    assert malformed.status_code == 400
    assert malformed.json()["errors"] == [{"message": malformed.json()["detail"]}]
