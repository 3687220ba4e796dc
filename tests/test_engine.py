"""The engine's decisions, as plain functions: no database, no Celery."""

import pytest

from executions.engine import (
    _MISSING,
    GRAPH_TRANSITIONS,
    NODE_TRANSITIONS,
    LinkSpec,
    NodeSpec,
    Pending,
    Plan,
    Status,
    collect_outputs,
    deliver,
    extract_output,
    fill_static,
    final_status,
    group_for_fan_in,
    is_ready,
    node_input,
    route_outputs,
    sources_for,
    starting_input,
)
from graphs.pins import merge_dynamic_pins, parse_pin, path_problem


def plan(nodes, links, static_blocks=()):
    return Plan.build(
        [NodeSpec(*n) for n in nodes], [LinkSpec(*spec) for spec in links], set(static_blocks)
    )


def test_parse_pin():
    assert parse_pin("values_#_name") == ("values", (("#", "name"),))
    assert parse_pin("items_$_3") == ("items", (("$", "3"),))
    assert parse_pin("value") == ("value", ())
    assert parse_pin("result_$_0_#_name") == ("result", (("$", "0"), ("#", "name")))
    assert parse_pin("values_#_user_$_2") == ("values", (("#", "user"), ("$", "2")))


def test_malformed_pin_paths_say_why():
    assert path_problem(parse_pin("values_#_")[1], sink=True) == "a pin path has an empty key"
    assert "not a non-negative integer" in path_problem(parse_pin("items_$_-1")[1], sink=True)
    assert path_problem(parse_pin("result_$_-1")[1], sink=False) is None  # a source may
    assert "not an integer" in path_problem(parse_pin("result_$_x")[1], sink=False)
    assert path_problem(parse_pin("items_$_²")[1], sink=True) is not None


def test_nested_sink_paths_build_nested_values_without_changing_the_given_ones():
    given = {"user": {"id": 7}}
    merged = merge_dynamic_pins(
        {"values": given, "values_#_user_#_name": "Ada", "values_#_tags_$_1": "b",
         "values_#_tags_$_0": "a", "rows_$_1_#_x": 2}
    )  # fmt: skip
    assert merged == {
        "values": {"user": {"id": 7, "name": "Ada"}, "tags": ["a", "b"]},
        "rows": [None, {"x": 2}],
    }
    assert given == {"user": {"id": 7}}  # copied, not changed


def test_merge_dynamic_pins_builds_dicts_and_lists():
    merged = merge_dynamic_pins(
        {"values_#_a": 1, "values_#_b": 2, "items_$_1": "y", "items_$_0": "x", "format": "f"}
    )
    assert merged == {"values": {"a": 1, "b": 2}, "items": ["x", "y"], "format": "f"}


def test_merge_dynamic_pins_lays_entries_over_a_default_and_pads_lists():
    assert merge_dynamic_pins({"values": {"a": 0, "c": 3}, "values_#_a": 1}) == {
        "values": {"a": 1, "c": 3}
    }
    assert merge_dynamic_pins({"items_$_2": "z"}) == {"items": [None, None, "z"]}


def test_extract_output_whole_entry_and_missing():
    assert extract_output("result", "result", {"a": 1}) == {"a": 1}
    assert extract_output("result_#_a", "result", {"a": 1}) == 1
    assert extract_output("result_#_b", "result", {"a": 1}) is _MISSING
    assert extract_output("result_$_1", "result", [10, 20]) == 20
    assert extract_output("result_$_5", "result", [10, 20]) is _MISSING
    assert extract_output("other", "result", 1) is _MISSING
    assert extract_output("result_#_a", "result", "not a dict") is _MISSING


def test_extract_output_follows_a_nested_source_path():
    rows = [{"name": "Ada", "tags": ["x", "y"]}, {"name": "Alan"}]
    assert extract_output("result_$_0_#_name", "result", rows) == "Ada"
    assert extract_output("result_$_-1_#_name", "result", rows) == "Alan"
    assert extract_output("result_$_0_#_tags_$_1", "result", rows) == "y"
    assert extract_output("result_$_1_#_tags", "result", rows) is _MISSING
    assert extract_output("result_$_2_#_name", "result", rows) is _MISSING


def test_deliver_pairs_first_in_first_out():
    pending: list[Pending] = []
    deliver(pending, "a", 1)
    deliver(pending, "a", 2)  # the first lacks nothing on "a": a second waits
    deliver(pending, "b", "x")  # pairs with the earliest lacking "b"
    deliver(pending, "b", "y")
    assert [p.inputs for p in pending] == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]


def test_static_value_fills_every_waiting_execution_and_later_ones():
    pending = [Pending(1, {"b": 1}), Pending(2, {"b": 2})]
    changed = deliver(pending, "a", "s", static=True)
    assert {p.id for p in changed} == {1, 2}
    assert all(p.inputs["a"] == "s" for p in pending)
    later = Pending(None, {"b": 3})
    fill_static(later, {"a": "s"})
    assert later.inputs == {"b": 3, "a": "s"} and later.changed


def test_ready_needs_every_linked_pin_not_defaults():
    assert is_ready(frozenset({"a", "b"}), {"a": 1, "b": 2})
    assert not is_ready(frozenset({"a", "b"}), {"a": 1})
    assert is_ready(frozenset(), {})


def test_node_input_lays_linked_values_over_defaults():
    assert node_input({"format": "{{ n }}", "values": {"n": 0}}, {"values_#_n": 5}) == {
        "format": "{{ n }}",
        "values": {"n": 5},
    }


def test_starting_input_takes_graph_input_by_name():
    node = NodeSpec("who", "input", {"name": "who", "value": "world"})
    assert starting_input(node, {"who": "Ada"})["value"] == "Ada"
    assert starting_input(node, {})["value"] == "world"
    assert starting_input(NodeSpec("t", "text_template", {"format": "x"}), {"who": "Ada"}) == {
        "format": "x"
    }


def test_plan_starting_nodes_and_static_links():
    p = plan(
        [
            ("in", "input", {}),
            ("a", "calculator", {}),
            ("b", "calculator", {}),
            ("c", "calculator", {}),
        ],
        [("in", "result", "a", "a", False), ("a", "result", "b", "a", False)],
        static_blocks={"input"},
    )
    assert p.starting_nodes == ["in", "c"]
    assert p.out_links["in"][0].is_static  # leaving a static block: always static
    assert not p.out_links["a"][0].is_static
    assert p.linked_pins("b") == {"a"} and p.static_pins("a") == {"a"}


def test_route_outputs_follows_each_link_of_the_pin():
    p = plan(
        [("s", "x", {}), ("t1", "x", {}), ("t2", "x", {})],
        [("s", "result", "t1", "v", False), ("s", "result_#_k", "t2", "v", False)],
    )
    routed = list(route_outputs(p, "s", [("result", {"k": 1}), ("result", {"j": 2})]))
    assert [(link.sink_id, value) for link, value in routed] == [
        ("t1", {"k": 1}),
        ("t2", 1),
        ("t1", {"j": 2}),
    ]


def test_error_handling_is_a_link_from_the_error_pin():
    p = plan([("a", "x", {}), ("b", "x", {})], [("a", "error", "b", "v", False)])
    assert p.handles_errors("a") and not p.handles_errors("b")


def test_fan_in_groups_only_executions_sharing_a_downstream_node():
    p = plan(
        [("a", "x", {}), ("b", "x", {}), ("c", "x", {}), ("j", "x", {}), ("k", "x", {})],
        [("a", "o", "j", "x", False), ("b", "o", "j", "y", False), ("c", "o", "k", "x", False)],
    )
    groups = group_for_fan_in(p, [(1, "a"), (2, "c"), (3, "b")])
    assert sorted(map(sorted, groups)) == [[1, 3], [2]]
    # many executions of one node that feed the same sink form one group
    assert group_for_fan_in(p, [(i, "a") for i in range(5)]) == [[0, 1, 2, 3, 4]]
    assert group_for_fan_in(p, []) == []


def test_transitions_are_enforced_as_compare_and_set_sources():
    # a node runs from the queue, or again once its wait is decided (parked, then woken)
    assert sources_for(NODE_TRANSITIONS, Status.RUNNING) == [
        Status.QUEUED,
        Status.REVIEW,
        Status.WAITING,
    ]
    assert sources_for(NODE_TRANSITIONS, Status.WAITING) == [Status.RUNNING]
    assert Status.COMPLETED not in NODE_TRANSITIONS[Status.WAITING]  # it runs to complete
    assert Status.COMPLETED not in sources_for(NODE_TRANSITIONS, Status.QUEUED)
    assert sources_for(GRAPH_TRANSITIONS, Status.QUEUED) == [Status.CANCELLED, Status.FAILED]
    assert NODE_TRANSITIONS[Status.COMPLETED] == frozenset()


def test_a_run_awaits_review_only_when_all_that_is_active_is_parked_with_a_review():
    from executions.engine import awaits_review

    assert awaits_review(active=1, parked=1, reviews=1)
    assert awaits_review(active=3, parked=3, reviews=1)  # a timer and an event wait too
    assert not awaits_review(active=2, parked=1, reviews=1)  # something still runs
    assert not awaits_review(active=2, parked=2, reviews=0)  # only timers or events
    assert not awaits_review(active=0, parked=0, reviews=0)


def test_final_status_and_outputs():
    assert final_status(0) == Status.COMPLETED
    assert final_status(2) == Status.FAILED
    assert collect_outputs([("a", [1]), ("b", [2]), ("a", [3])]) == {"a": [1, 3], "b": [2]}


def test_check_transition_refuses_moves_outside_the_table():
    import pytest

    from executions.engine import InvalidTransition, check_transition

    check_transition(NODE_TRANSITIONS, Status.QUEUED, Status.RUNNING)
    check_transition(GRAPH_TRANSITIONS, Status.FAILED, Status.QUEUED)  # resume re-opens
    for table, old, new in [
        (NODE_TRANSITIONS, Status.COMPLETED, Status.RUNNING),
        (NODE_TRANSITIONS, Status.INCOMPLETE, Status.COMPLETED),
        (GRAPH_TRANSITIONS, Status.COMPLETED, Status.QUEUED),
        (GRAPH_TRANSITIONS, Status.QUEUED, Status.COMPLETED),
    ]:
        with pytest.raises(InvalidTransition):
            check_transition(table, old, new)


def test_node_time_limit_and_retry_policy():
    from executions.budgets import node_time_limit, retry_delay, retry_limit

    assert node_time_limit(300, None, 3600) == 300
    assert node_time_limit(300, 5, 3600) == 5
    assert node_time_limit(300, 99999, 3600) == 3600
    assert retry_limit("http_request", 3, {}) == 3
    assert retry_limit("http_request", 3, {"http_request": 7}) == 7
    assert retry_delay(1, 1.0, 60, jitter=0.5) == 1.0
    assert retry_delay(3, 1.0, 60, jitter=0.5) == 4.0
    assert retry_delay(2, 1.0, 60, jitter=0.0) == 1.0  # jitter spans [0.5, 1.5) x
    assert retry_delay(20, 1.0, 60, jitter=0.99) == 60  # capped


@pytest.mark.parametrize("where", ["chain_hop._SINGLE_HOP_SQL", "limits._INSERT_WITHIN_LIMIT_SQL"])
def test_the_raw_inserts_name_every_node_execution_column(where):
    """A chain hop's next row and propagated rows are inserted with raw SQL: it must set
    every column."""
    import importlib
    import re

    from executions.models import NodeExecution

    module, name = where.split(".")
    sql = getattr(importlib.import_module(f"executions.{module}"), name)
    listed = re.search(r"INSERT INTO executions_nodeexecution\s*\(([^)]*)\)", sql)
    columns = {c.strip() for c in listed[1].split(",")}
    expected = {f.column for f in NodeExecution._meta.concrete_fields} - {"id"}
    assert columns == expected


def test_a_token_hold_is_given_back_only_once_its_task_cannot_settle_it():
    from executions.recovery import hold_task_gone

    life = 3630.0
    # The task still runs its node (RUNNING, same attempt): never, however long it waits...
    assert not hold_task_gone(1, ("RUNNING", 1), True, 100, life)
    assert not hold_task_gone(1, ("RUNNING", 1), False, 100, life)  # ...lease lapsing or not
    assert hold_task_gone(1, ("RUNNING", 1), True, life + 1, life)  # ...but past its hard limit
    assert hold_task_gone(1, ("RUNNING", 2), True, 5, life)  # a later attempt took over
    assert hold_task_gone(1, ("FAILED", 1), False, 5, life)  # ended, and nobody holds it
    assert not hold_task_gone(1, ("CANCELLED", 1), True, 5, life)  # its process may still run
    assert hold_task_gone(1, None, False, 5, life)  # the node execution is gone


def test_a_nodes_output_budget_names_the_limit_it_passes():
    from executions.budgets import OutputBudget

    by_count = OutputBudget(max_yields=2, max_bytes=10_000)
    assert by_count.spend("a") is None and by_count.spend("b") is None
    assert "ENGINE_MAX_NODE_YIELDS" in by_count.spend("c")
    by_size = OutputBudget(max_yields=100, max_bytes=1_000)
    assert by_size.spend("x" * 500) is None
    assert "ENGINE_MAX_NODE_OUTPUT_BYTES" in by_size.spend(["y" * 600])
