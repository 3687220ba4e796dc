"""The list and dictionary toolkit and json_query, run directly (pure, no worker). The
vectors marked AutoGPT are that catalogue's own test_input/test_output for the block of the
same name (autogpt_platform/backend/backend/blocks/data_manipulation.py, basic.py)."""

import pytest

from blocks.base import BlockError, RunContext
from blocks.registry import get_block

CTX = RunContext(user_id=1, graph_execution_id="run", node_id="n", node_execution_id=1)


def run(block, **inputs):
    return list(get_block(block).execute(inputs, CTX))


AUTOGPT_VECTORS = [
    ("create_dict", {"values": {"name": "Alice", "age": 25, "city": "New York"}},
     [("dictionary", {"name": "Alice", "age": 25, "city": "New York"})]),
    ("create_dict", {"values": {"numbers": [1, 2, 3], "active": True, "score": 95.5}},
     [("dictionary", {"numbers": [1, 2, 3], "active": True, "score": 95.5})]),
    ("remove_from_dict", {"dictionary": {"a": 1, "b": 2, "c": 3}, "key": "b", "return_value": True},
     [("updated_dictionary", {"a": 1, "c": 3}), ("removed_value", 2)]),
    ("remove_from_dict", {"dictionary": {"x": "hello", "y": "world"}, "key": "x"},
     [("updated_dictionary", {"y": "world"})]),
    ("replace_dict_value", {"dictionary": {"a": 1, "b": 2, "c": 3}, "key": "b", "value": 99},
     [("updated_dictionary", {"a": 1, "b": 99, "c": 3}), ("old_value", 2)]),
    ("replace_dict_value", {"dictionary": {"x": "hello", "y": "world"}, "key": "y",
                            "value": "universe"},
     [("updated_dictionary", {"x": "hello", "y": "universe"}), ("old_value", "world")]),
    ("dict_is_empty", {"dictionary": {}}, [("is_empty", True)]),
    ("dict_is_empty", {"dictionary": {"a": 1}}, [("is_empty", False)]),
    ("create_list", {"values": ["Alice", 25, True]}, [("list", ["Alice", 25, True])]),
    ("create_list", {"values": [1, 2, 3, "four", {"key": "value"}]},
     [("list", [1, 2, 3, "four", {"key": "value"}])]),
    ("find_in_list", {"list": [1, 2, 3, 4, 5], "value": 3}, [("index", 2), ("found", True)]),
    ("find_in_list", {"list": [1, 2, 3, 4, 5], "value": 6},
     [("found", False), ("not_found_value", 6)]),
    ("get_list_item", {"list": [1, 2, 3], "index": 1}, [("item", 2)]),
    ("get_list_item", {"list": [1, 2, 3], "index": -1}, [("item", 3)]),
    ("remove_from_list", {"list": [1, 2, 3], "index": 1, "return_item": True},
     [("updated_list", [1, 3]), ("removed_item", 2)]),
    ("remove_from_list", {"list": ["a", "b", "c"], "value": "b"}, [("updated_list", ["a", "c"])]),
    ("replace_list_item", {"list": [1, 2, 3], "index": 1, "value": 99},
     [("updated_list", [1, 99, 3]), ("old_item", 2)]),
    ("replace_list_item", {"list": ["a", "b"], "index": -1, "value": "c"},
     [("updated_list", ["a", "c"]), ("old_item", "b")]),
    ("list_is_empty", {"list": []}, [("is_empty", True)]),
    ("list_is_empty", {"list": [1]}, [("is_empty", False)]),
    ("concatenate_lists", {"lists": [[1, 2, 3], [4, 5, 6]]},
     [("concatenated_list", [1, 2, 3, 4, 5, 6]), ("length", 6)]),
    ("concatenate_lists", {"lists": [["a", "b"], ["c"], ["d", "e", "f"]]},
     [("concatenated_list", ["a", "b", "c", "d", "e", "f"]), ("length", 6)]),
    ("concatenate_lists", {"lists": [[1, 2], []]}, [("concatenated_list", [1, 2]), ("length", 2)]),
    ("concatenate_lists", {"lists": []}, [("concatenated_list", []), ("length", 0)]),
    ("concatenate_lists", {"lists": [[1, 2, 2, 3], [3, 4]], "deduplicate": True},
     [("concatenated_list", [1, 2, 3, 4]), ("length", 4)]),
    ("concatenate_lists", {"lists": [[1, None, 2], [None, 3]], "remove_none": True},
     [("concatenated_list", [1, 2, 3]), ("length", 3)]),
    ("count_items", {"collection": [1, 2, 3, 4, 5]}, [("count", 5)]),
]  # fmt: skip


@pytest.mark.parametrize(("block", "inputs", "expected"), AUTOGPT_VECTORS)
def test_autogpt_vectors(block, inputs, expected):
    assert run(block, **inputs) == expected


@pytest.mark.parametrize(
    ("block", "inputs", "words"),
    [
        ("remove_from_dict", {"dictionary": {"a": 1}, "key": "z"}, "'z' is not in"),
        ("replace_dict_value", {"dictionary": {}, "key": "z", "value": 1}, "'z' is not in"),
        ("get_list_item", {"list": [1, 2, 3], "index": 3}, "outside a list of 3"),
        ("get_list_item", {"list": [], "index": -1}, "outside a list of 0"),
        ("remove_from_list", {"list": [1], "index": -2}, "outside"),
        ("remove_from_list", {"list": [1], "value": 9}, "9 is not in the list"),
        ("remove_from_list", {"list": [1]}, "give `index` or `value`"),
        ("replace_list_item", {"list": [1], "index": 1, "value": 0}, "outside"),
        ("concatenate_lists", {"lists": [[1], "two"]}, "lists[1] is a str"),
        ("count_items", {"collection": 7}, "a int has no items"),
        ("json_query", {"data": {}, "query": "a[?"}, "invalid JMESPath"),
    ],
)
def test_what_cannot_be_done_fails_the_node_with_why(block, inputs, words):
    with pytest.raises(BlockError, match=words.replace("[", r"\[").replace("?", r"\?")):
        run(block, **inputs)


def test_create_list_chunks_into_pieces_of_max_size():
    assert run("create_list", values=[1, 2, 3, 4, 5], max_size=2) == [
        ("list", [1, 2]), ("list", [3, 4]), ("list", [5]),
    ]  # fmt: skip
    assert run("create_list", values=[], max_size=2) == [("list", [])]


def test_count_items_counts_lists_dicts_and_text():
    assert run("count_items", collection={"a": 1, "b": 2}) == [("count", 2)]
    assert run("count_items", collection="héllo") == [("count", 5)]


def test_deduplicate_keeps_one_and_true_apart():
    result = run(
        "concatenate_lists", lists=[[1, True, 1.0, {"a": 1}], [{"a": 1}]], deduplicate=True
    )
    assert result[0] == ("concatenated_list", [1, True, 1.0, {"a": 1}])


def test_json_query_finds_or_says_missing():
    data = {"people": [{"name": "Ada", "age": 36}, {"name": "Alan", "age": 41}]}
    assert run("json_query", data=data, query="people[?age > `40`].name") == [("result", ["Alan"])]
    assert run("json_query", data=data, query="people[0].name") == [("result", "Ada")]
    assert run("json_query", data=data, query="nobody.here") == [("missing", data)]
    assert run("json_query", data=[1, 2, 3], query="length(@)") == [("result", 3)]
