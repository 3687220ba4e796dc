"""Typed graph inputs and a graph's input_schema / output_schema (issue 20): values checked
and coerced where unambiguous when a run starts, a 400 naming the input otherwise."""

import pytest

from blocks.input_types import InputValueInvalid, coerce
from executions.models import GraphExecution
from files.services import file_store

from .documents import link, node


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("integer", "42", 42), ("integer", 7.0, 7), ("integer", " -3 ", -3),
        ("number", "2.5", 2.5), ("number", 3, 3),
        ("boolean", "TRUE", True), ("boolean", False, False),
        ("short_text", 12, "12"), ("long_text", "a\nb", "a\nb"),
        ("date", "2026-12-02", "2026-12-02"), ("time", "09:30", "09:30:00"),
        ("date_time", "2026-12-02T09:30:00+01:00", "2026-12-02T09:30:00+01:00"),
        ("file", "0b3f5a8e-9c53-4c3e-8f6e-4b6a3c1d2e7f",
         {"$file": "0b3f5a8e-9c53-4c3e-8f6e-4b6a3c1d2e7f"}),
        ("any", [1, {"a": None}], [1, {"a": None}]),
    ],
)  # fmt: skip
def test_values_are_coerced_where_unambiguous(kind, value, expected):
    assert coerce(kind, value) == expected


@pytest.mark.parametrize(
    ("kind", "value", "words"),
    [
        ("integer", "4.5", "expected an integer"), ("integer", True, "expected an integer"),
        ("number", "nan", "expected a number"), ("number", "x", "expected a number"),
        ("boolean", "yes", "expected true or false"), ("short_text", "a\nb", "one line"),
        ("short_text", "x" * 1001, "at most 1000"), ("long_text", {"a": 1}, "expected text"),
        ("date", "02/12/2026", "a date"), ("time", "25:00", "a time"),
        ("date_time", 5, "a date and time"), ("file", {"$file": "nope"}, "not a file id"),
        ("file", {"path": "/etc/passwd"}, "file reference"),
    ],
)  # fmt: skip
def test_values_that_do_not_fit_say_what_was_expected(kind, value, words):
    with pytest.raises(InputValueInvalid, match=words):
        coerce(kind, value)


def test_a_choice_is_one_of_its_options():
    assert coerce("choice", "b", ["a", "b"]) == "b"
    with pytest.raises(InputValueInvalid, match="one of 'a', 'b'"):
        coerce("choice", "c", ["a", "b"])


def typed_graph():
    return {
        "name": "Typed",
        "nodes": [
            node("n", "input", name="count", type="integer", description="How many"),
            node("m", "input", name="mode", type="choice", options=["fast", "slow"], value="fast"),
            node("d", "input", name="doc", type="file"),
            node("o", "output", name="doubled", description="count times two"),
            node("calc", "calculator", operation="multiply", b=2),
        ],
        "links": [link("n", "result", "calc", "a"), link("calc", "result", "o", "value")],
    }


def test_a_graph_shows_its_input_and_output_schemas(api):
    graph = api.post("/api/graphs/", typed_graph(), format="json").json()
    schema = api.get(f"/api/graphs/{graph['id']}/").json()["input_schema"]
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert schema["required"] == ["count", "doc"]  # mode has a default
    assert schema["properties"]["count"] == {
        "title": "count", "type": "integer", "description": "How many",
    }  # fmt: skip
    assert schema["properties"]["mode"] == {"title": "mode", "enum": ["fast", "slow"],
                                            "default": "fast"}  # fmt: skip
    assert schema["properties"]["doc"]["required"] == ["$file"]
    outputs = graph["output_schema"]["properties"]
    assert outputs == {"doubled": {"title": "doubled", "type": "array", "items": {},
                                   "description": "count times two"}}  # fmt: skip
    openapi = api.get("/api/schema/?format=json").json()
    assert "input_schema" in openapi["components"]["schemas"]["Graph"]["properties"]


def test_execute_checks_and_coerces_typed_inputs(api, user, other_user):
    graph = api.post("/api/graphs/", typed_graph(), format="json").json()
    mine = file_store(owner_id=user.pk, name="a.txt", content=b"a")
    theirs = file_store(owner_id=other_user.pk, name="b.txt", content=b"b")
    url = f"/api/graphs/{graph['id']}/execute/"

    def execute(**inputs):
        return api.post(url, {"inputs": {"count": "21", "doc": str(mine.pk), **inputs}},
                        format="json")  # fmt: skip

    for inputs, words in (
        ({"count": "many"}, "graph input 'count': expected an integer"),
        ({"mode": "medium"}, "graph input 'mode': expected one of 'fast', 'slow'"),
        ({"doc": str(theirs.pk)}, f"no file {theirs.pk} of yours"),
        ({"doc": "not-an-id"}, "graph input 'doc'"),
    ):
        answer = execute(**inputs)
        assert answer.status_code == 400 and words in answer.json()["detail"], answer.json()
    assert not GraphExecution.objects.exists()
    started = execute()
    assert started.status_code == 201, started.json()
    run = GraphExecution.objects.get()
    assert run.inputs == {"count": 21, "doc": {"$file": str(mine.pk)}}


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"type": "integer", "value": "x"}, "does not fit type integer"),
        ({"type": "choice"}, "needs `options`"),
        ({"type": "integer", "options": [1]}, "is for inputs of type choice"),
        ({"type": "colour"}, "type"),
    ],
)
def test_bad_input_settings_are_a_400_at_save(api, settings, words):
    document = {"name": "Bad", "nodes": [node("i", "input", name="x", **settings)]}
    answer = api.post("/api/graphs/", document, format="json")
    assert answer.status_code == 400 and words in str(answer.json()), answer.json()
