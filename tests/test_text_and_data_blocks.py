"""The text and data helper blocks, run directly (pure, no worker)."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from blocks.base import BlockError, RunContext
from blocks.registry import get_block

CTX = RunContext(user_id=1, graph_execution_id="run", node_id="n", node_execution_id=1)


def run(block, **inputs):
    return list(get_block(block).execute(inputs, CTX))


def test_match_text_pattern_routes_data():
    assert run("match_text_pattern", text="order #42", match=r"#\d+", data="yes") == [
        ("positive", "yes")
    ]
    assert run("match_text_pattern", text="no number", match=r"\d") == [("negative", "no number")]
    assert run("match_text_pattern", text="ABC", match="abc", case_sensitive=False)[0][0] == (
        "positive"
    )
    assert run("match_text_pattern", text={"k": 7}, match='"k": 7')[0][0] == "positive"


def test_patterns_that_backtrack_forever_fail_the_node_not_the_worker():
    with pytest.raises(BlockError, match="took over"):
        run("match_text_pattern", text="a" * 40 + "!", match=r"(a|a)+$")
    with pytest.raises(BlockError, match="invalid pattern"):
        run("match_text_pattern", text="x", match="(")


def test_extract_text_takes_groups():
    text = "alice@example.com, bob@example.org"
    assert run("extract_text", text=text, pattern=r"(\w+)@", group=1) == [("positive", "alice")]
    assert run("extract_text", text=text, pattern=r"(?P<user>\w+)@", group="user",
               find_all=True) == [("positive", "alice"), ("positive", "bob")]  # fmt: skip
    assert run("extract_text", text="none", pattern=r"\d+") == [("negative", "none")]
    with pytest.raises(BlockError, match="no group 3"):
        run("extract_text", text=text, pattern=r"(\w+)@", group=3)


def test_split_combine_and_replace_text():
    assert run("split_text", text="a, b,,c ", delimiter=",") == [("texts", ["a", "b", "c"])]
    assert run("split_text", text="a,,b", delimiter=",", strip=False, keep_empty=True) == [
        ("texts", ["a", "", "b"])
    ]
    assert run("combine_texts", input=["a", 1, None, "b"], delimiter="-") == [("output", "a-1-b")]
    assert run("replace_text", text="a.b.c", old=".", new="/") == [("output", "a/b/c")]


def test_find_in_dict_walks_keys_and_indexes():
    data = {"user": {"emails": ["a@x", "b@x"]}, "1": "one"}
    assert run("find_in_dict", input=data, key="user.emails.1") == [("output", "b@x")]
    assert run("find_in_dict", input=data, key=1) == [("output", "one")]
    assert run("find_in_dict", input=data, key="user.phone") == [("missing", data)]
    assert run("find_in_dict", input=[10, 20], key="-1") == [("output", 20)]


def test_add_to_dict_and_list_copy_their_input():
    assert run("add_to_dict", dictionary={"a": 1}, key="b", value=2, entries={"c": 3}) == [
        ("updated_dictionary", {"a": 1, "b": 2, "c": 3})
    ]
    assert run("add_to_list", list=[1, 3], entry=2, position=1) == [("updated_list", [1, 2, 3])]
    assert run("add_to_list", list=[1], entries=[2, 3]) == [("updated_list", [1, 2, 3])]
    with pytest.raises(BlockError, match="outside"):
        run("add_to_list", list=[1], entry=2, position=5)


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        (12, "string", "12"),
        ({"a": 1}, "string", '{"a": 1}'),
        ("3.5", "number", 3.5),
        ("7", "number", 7),
        (True, "number", 1),
        ("yes", "boolean", True),
        ("off", "boolean", False),
        ("[1, 2]", "list", [1, 2]),
        ("x", "list", ["x"]),
        ('{"a": 1}', "dict", {"a": 1}),
        ([["a", 1]], "dict", {"a": 1}),
    ],
)
def test_convert_type(value, kind, expected):
    assert run("convert_type", value=value, type=kind) == [("value", expected)]


@pytest.mark.parametrize(("value", "kind"), [("abc", "number"), ("maybe", "boolean"),
                                             ("nan", "number"), ("[1]", "dict")])  # fmt: skip
def test_convert_type_refuses_what_does_not_convert(value, kind):
    with pytest.raises(BlockError, match="cannot convert"):
        run("convert_type", value=value, type=kind)


def test_current_time_in_a_time_zone():
    out = dict(run("current_time", format="%H:%M %Z", timezone="Asia/Kolkata"))
    parsed = datetime.fromisoformat(out["iso"])
    assert parsed.utcoffset().total_seconds() == 5.5 * 3600
    assert out["time"].endswith("IST")
    assert abs(parsed.timestamp() - datetime.now(ZoneInfo("UTC")).timestamp()) < 5
    with pytest.raises(BlockError, match="unknown time zone"):
        run("current_time", timezone="Nowhere/City")
