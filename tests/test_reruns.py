"""Re-runs from a node (issue 19), end to end on a real worker, against the scripted model
server: nothing upstream is run or charged again, a changed node and what follows it run,
fan-outs are reproduced in order, and the preview says it all first."""

import pytest

from credits.models import CreditTransaction
from executions.models import NodeExecution

from .conftest import create_graph, wait_for_run
from .documents import link, node
from .test_agent import model  # noqa: F401  (the scripted model server, a fixture)
from .test_control import execute

pytestmark = pytest.mark.integration


def five(fix="{{ t | no_such_filter }}", sys_prompt="Be brief."):
    """topic -> model -> template -> template (fails on version 1) -> paid sleep -> out."""
    return {
        "name": "Five steps",
        "nodes": [
            node("s1", "input", name="topic", value="otters"),
            node("s2", "llm_text", sys_prompt=sys_prompt),
            node("s3", "text_template", format="About: {{ t }}"),
            node("s4", "text_template", format=fix),
            node("s5", "sleep", seconds=0),
            node("out", "output", name="done"),
        ],
        "links": [
            link("s1", "result", "s2", "prompt"),
            link("s2", "response", "s3", "values_#_t"),
            link("s3", "output", "s4", "values_#_t"),
            link("s4", "output", "s5", "value"),
            link("s5", "output", "out", "value"),
        ],
    }


def charged(eid):
    rows = CreditTransaction.objects.filter(execution_id=eid, type__in=["USAGE", "REFUND"])
    return -sum(rows.values_list("amount", flat=True))


def test_a_rerun_from_the_failed_step_on_a_fixed_version_reuses_the_model_call(
    api,
    user,
    worker,
    model,  # noqa: F811
):
    model.script = [{"text": "Otters hold hands."}]
    graph = create_graph(api, five())
    failed = wait_for_run(api, execute(api, graph))
    assert failed["status"] == "FAILED" and len(model.requests) == 1
    fixed = api.put(f"/api/graphs/{graph['id']}/", five(fix="{{ t }}!"), format="json")
    assert fixed.status_code == 200 and fixed.json()["version"] == 2, fixed.json()
    body = {"from_nodes": ["s4"], "version": 2}
    preview = api.post(f"/api/executions/{failed['id']}/rerun/preview/", body, format="json")
    assert preview.status_code == 200, preview.json()
    assert preview.json() == {
        "reused": ["s1", "s2", "s3"], "run": ["s4", "s5", "out"], "sensitive": [], "min_cost": 1,
        "max_cost": 1, "token_priced": [],  # the model step is reused
    }  # fmt: skip
    answer = api.post(f"/api/executions/{failed['id']}/rerun/", body, format="json")
    assert answer.status_code == 201, answer.json()
    record = wait_for_run(api, answer.json()["id"])
    assert record["status"] == "COMPLETED", record
    assert record["rerun_of"] == failed["id"] and record["graph_version"] == 2
    assert record["outputs"] == {"done": ["About: Otters hold hands.!"]}
    assert len(model.requests) == 1  # no new model call
    assert charged(record["id"]) == preview.json()["min_cost"] == 1  # only the sleep
    rows = {n.node_id: n for n in NodeExecution.objects.filter(execution_id=record["id"])}
    originals = {n.node_id: n.pk for n in NodeExecution.objects.filter(execution_id=failed["id"])}
    for reused in ("s1", "s2", "s3"):
        assert rows[reused].reused_from == originals[reused] and rows[reused].cost == 0
    assert rows["s4"].reused_from is None and rows["s4"].status == "COMPLETED"
    shown = {n["node_id"]: n["reused_from"] for n in record["node_executions"]}
    assert shown["s2"] == originals["s2"] and shown["s5"] is None


def test_a_rerun_on_a_version_that_changed_the_model_step_runs_it_again(
    api,
    user,
    worker,
    model,  # noqa: F811
):
    model.script = [{"text": "first"}, {"text": "second"}]
    graph = create_graph(api, five(fix="{{ t }}"))
    first = wait_for_run(api, execute(api, graph))
    assert first["status"] == "COMPLETED"
    api.put(
        f"/api/graphs/{graph['id']}/", five(fix="{{ t }}", sys_prompt="Be long."), format="json"
    )
    body = {"from_nodes": ["s4"], "version": 2}
    preview = api.post(f"/api/executions/{first['id']}/rerun/preview/", body, format="json").json()
    assert preview["run"] == ["s2", "s3", "s4", "s5", "out"] and preview["reused"] == ["s1"]
    # The model step's 1,024 answer tokens at the default 3 credits per 1,000: at most 4 more.
    assert preview["token_priced"] == [
        {"node_id": "s2", "model": "gpt-4o-mini", "answer_tokens": 1024, "max_cost": 4}
    ]
    assert (preview["min_cost"], preview["max_cost"]) == (2, 6)
    rerun = api.post(f"/api/executions/{first['id']}/rerun/", body, format="json").json()
    record = wait_for_run(api, rerun["id"])
    assert record["outputs"] == {"done": ["About: second"]}
    assert len(model.requests) == 2
    assert preview["min_cost"] < charged(record["id"]) <= preview["max_cost"]  # a few tokens


def test_a_rerun_of_a_fan_out_gets_the_same_values_in_the_same_order(api, user, worker):
    document = {
        "name": "Fan",
        "nodes": [
            node("each", "step_through_items", items=[f"v{i}" for i in range(10)]),
            node("shout", "text_template", format="{{ x | upper }}"),
            node("out", "output", name="all"),
        ],
        "links": [
            link("each", "item", "shout", "values_#_x"),
            link("shout", "output", "out", "value"),
        ],
    }
    first = wait_for_run(api, execute(api, create_graph(api, document)))
    assert first["outputs"] == {"all": [f"V{i}" for i in range(10)]}
    rerun = api.post(
        f"/api/executions/{first['id']}/rerun/", {"from_nodes": ["shout"]}, format="json"
    ).json()
    record = wait_for_run(api, rerun["id"])
    assert record["status"] == "COMPLETED", record
    assert record["outputs"] == {"all": [f"V{i}" for i in range(10)]}
    shouted = NodeExecution.objects.filter(execution_id=record["id"], node_id="shout").order_by(
        "id"
    )
    assert [n.input_data["values"]["x"] for n in shouted] == [f"v{i}" for i in range(10)]
    assert NodeExecution.objects.get(execution_id=record["id"], node_id="each").reused_from


def test_rerun_requests_are_checked(api, user, worker, other_api):
    document = {"name": "One", "nodes": [node("a", "store_value", input="x")]}
    first = wait_for_run(api, execute(api, create_graph(api, document)))
    url = f"/api/executions/{first['id']}/rerun/"
    assert api.post(url, {"from_nodes": ["nope"]}, format="json").status_code == 400
    assert api.post(url, {"from_nodes": ["a"], "version": 9}, format="json").status_code == 400
    assert api.post(url, {}, format="json").status_code == 400
    nothing = api.post(url, {"from_nodes": []}, format="json")
    assert nothing.status_code == 400 and "nothing would run" in str(nothing.json())
    assert other_api.post(url, {"from_nodes": ["a"]}, format="json").status_code == 404


def test_the_admin_shows_the_preview_before_re_running(
    api,
    user,
    worker,
    model,  # noqa: F811
    client,
):
    from django.contrib.auth import get_user_model

    from executions.models import GraphExecution

    model.script = [{"text": "Otters hold hands."}]
    failed = wait_for_run(api, execute(api, create_graph(api, five())))
    assert failed["status"] == "FAILED"
    client.force_login(get_user_model().objects.create_superuser("boss", "b@example.com", "pw"))
    changelist = "/admin/executions/graphexecution/"
    selected = {"action": "rerun", "_selected_action": [failed["id"]]}
    page = client.post(changelist, selected).content.decode()
    stopped = page[page.index('class="from-stopped"') : page.index('class="from-start"')]
    start = page[page.index('class="from-start"') :]
    start = start[: start.index("</table>")]
    assert "s1, s2, s3" in stopped and "s4, s5, out" in stopped and "1 credits" in stopped
    assert "s1, s2, s3, s4, s5, out" in start and "2\u20136 credits" in start  # the model step
    assert not GraphExecution.objects.filter(rerun_of=failed["id"]).exists()  # nothing yet

    done = client.post(changelist, {**selected, "confirmed": "yes", "from": "stopped"}, follow=True)
    assert "re-run as" in done.content.decode()
    rerun = GraphExecution.objects.get(rerun_of=failed["id"])
    record = wait_for_run(api, str(rerun.pk))
    assert record["status"] == "FAILED"  # the same version fails the same way...
    assert len(model.requests) == 1  # ...without asking the model again
    assert NodeExecution.objects.get(execution_id=rerun.pk, node_id="s2").reused_from
