"""Dry runs (issue 19), end to end on a real worker: blocks that leave the process are
simulated, pure blocks run for real, nothing is sent or charged, the record says so."""

import pytest

from credits.models import CreditTransaction
from executions.models import GraphExecution, NodeExecution, Wait
from notifications.models import Notification

from .conftest import create_graph, wait_for_run
from .documents import link, node
from .test_reviews import posts, recorder  # noqa: F401  (a local server counting requests)

pytestmark = pytest.mark.integration


def acting_graph(server):
    """Asks a model, has a person review, posts the answer, branches on a pure condition."""
    return {
        "name": "Acts on the world",
        "nodes": [
            node("ask", "llm_text", prompt="Draft a reply."),
            node("check", "human_review", message="Send it?"),
            node(
                "post",
                "http_request",
                url=f"http://127.0.0.1:{server.server_port}/post",
                method="POST",
            ),
            node("say", "text_template", format="Would send: {{ r }}"),
            node("big", "condition", operator=">", value2=3),
            node("said", "output", name="said"),
            node("posted", "output", name="posted"),
            node("long", "output", name="long"),
        ],
        "links": [
            link("ask", "response", "check", "data"),
            link("check", "approved_data", "post", "body"),
            link("check", "approved_data", "say", "values_#_r"),
            link("say", "output", "said", "value"),
            link("post", "response", "posted", "value"),
            link("ask", "usage_#_prompt_tokens", "big", "value1"),
            link("big", "no_output", "long", "value"),
        ],
    }


def test_a_dry_run_simulates_what_leaves_the_process_and_runs_the_rest(
    api,
    user,
    worker,
    recorder,  # noqa: F811
):
    graph = create_graph(api, acting_graph(recorder))
    response = api.post(f"/api/graphs/{graph['id']}/execute/", {"dry_run": True}, format="json")
    assert response.status_code == 201 and response.json()["dry_run"] is True
    record = wait_for_run(api, response.json()["id"])
    assert record["status"] == "COMPLETED", record
    assert record["dry_run"] is True
    # the pure template ran for real on the simulated answer; the condition branched on it
    assert record["outputs"]["said"] == ["Would send: [dry run] a model's answer"]
    assert record["outputs"]["long"] == [0]
    assert record["outputs"]["posted"] == [None]  # the request's simulated response
    assert posts(recorder) == []  # nothing was sent
    assert not CreditTransaction.objects.filter(execution_id=record["id"]).exists()
    assert not Wait.objects.filter(execution_id=record["id"]).exists()  # no one was asked
    assert not Notification.objects.filter(user=user).exists()
    ask = NodeExecution.objects.get(execution_id=record["id"], node_id="ask")
    assert ask.output_data["usage"][0]["charged"] is False and ask.cost == 0


def test_a_dry_run_refuses_a_graph_whose_credentials_are_not_stored(api, user, worker):
    document = {
        "name": "Needs a key",
        "nodes": [
            node("ask", "llm_text", prompt="Hi", credentials={"$credential": "OPENAI"}),
            node("out", "output", name="a"),
        ],
        "links": [link("ask", "response", "out", "value")],
    }
    graph = create_graph(api, document)
    refused = api.post(f"/api/graphs/{graph['id']}/execute/", {"dry_run": True}, format="json")
    assert refused.status_code == 400, refused.json()
    assert "no stored credential named 'OPENAI'" in str(refused.json())
    assert not GraphExecution.objects.filter(graph_id=graph["id"]).exists()
    stored = api.post("/api/credentials/", {"name": "OPENAI", "value": "sk-x"}, format="json")
    assert stored.status_code == 201, stored.json()
    again = api.post(f"/api/graphs/{graph['id']}/execute/", {"dry_run": True}, format="json")
    assert again.status_code == 201
    assert wait_for_run(api, again.json()["id"])["status"] == "COMPLETED"
