"""Which nodes a re-run runs and which it reuses (executions/rerun_plans.py): plain data, no
database, no Celery."""

import pytest

from executions.engine import LinkSpec, NodeSpec, Plan
from executions.rerun_plans import changed_nodes, node_fingerprint, rerun_plan


def chain(prompt="Summarize", with_loop=False):
    """input -> draft (llm) -> check -> fix -> out, optionally fix -> check again."""
    nodes = [
        NodeSpec("in", "input", {"name": "topic"}),
        NodeSpec("draft", "llm_text", {"sys_prompt": prompt}),
        NodeSpec("check", "condition", {"operator": "=="}),
        NodeSpec("fix", "text_template", {"format": "{{ x }}"}),
        NodeSpec("out", "output", {"name": "o"}),
    ]
    links = [
        LinkSpec("in", "result", "draft", "prompt"),
        LinkSpec("draft", "response", "check", "value1"),
        LinkSpec("check", "yes_output", "fix", "values_#_x"),
        LinkSpec("fix", "output", "out", "value"),
    ]
    if with_loop:
        links.append(LinkSpec("fix", "output", "check", "value2"))
    return Plan.build(nodes, links, {"input"})


def test_a_rerun_from_a_node_runs_it_and_what_is_downstream_and_reuses_the_rest():
    plan = chain()
    result = rerun_plan(plan, plan, {"check"})
    assert result.run == ["check", "fix", "out"]
    assert result.reused == ["in", "draft"]


def test_a_changed_node_on_a_new_version_runs_again_with_everything_downstream():
    old, new = chain(), chain(prompt="Summarize briefly")
    assert changed_nodes(old, new) == {"draft"}
    result = rerun_plan(old, new, {"fix"})
    assert result.run == ["draft", "check", "fix", "out"]
    assert result.reused == ["in"]


def test_a_changed_link_changes_its_sink_and_a_new_node_runs():
    old = chain()
    new_nodes = [*old.nodes.values(), NodeSpec("extra", "store_value", {})]
    links = [link for links in old.out_links.values() for link in links]
    links.append(LinkSpec("in", "result", "extra", "input"))
    new = Plan.build(new_nodes, links, {"input"})
    assert changed_nodes(old, new) == {"extra"}
    relinked = Plan.build(
        list(old.nodes.values()),
        [LinkSpec("in", "result", "draft", "sys_prompt"), *links[1:4]],
        {"input"},
    )
    assert "draft" in changed_nodes(old, relinked)
    assert node_fingerprint(old, "check") == node_fingerprint(relinked, "check")


def test_changed_inputs_rerun_their_input_nodes_and_loops_are_followed():
    plan = chain(with_loop=True)
    assert rerun_plan(plan, plan, set(), {"topic"}).reused == []
    result = rerun_plan(plan, plan, {"fix"})
    assert result.run == ["check", "fix", "out"]  # the loop back to check runs it too
    assert rerun_plan(plan, plan, set()).run == []


def test_an_unknown_node_is_refused():
    plan = chain()
    with pytest.raises(KeyError, match="nope"):
        rerun_plan(plan, plan, {"nope"})
