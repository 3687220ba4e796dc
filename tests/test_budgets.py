"""Run budgets (issue 19), end to end on a real worker: a paid node that would take the run
tree past its budget waits in review; approving raises the budget, rejecting fails the run
naming it."""

import pytest

from credits.models import CreditTransaction
from executions.models import NodeExecution, Wait

from .conftest import create_graph, wait_for_run
from .documents import sleep_chain
from .test_control import wait_until
from .test_reviews import parked_review, run_status

pytestmark = pytest.mark.integration


def spent(eid):
    rows = CreditTransaction.objects.filter(execution_id=eid, type__in=["USAGE", "REFUND"])
    return -sum(rows.values_list("amount", flat=True))


def start(api, budget, **body):
    graph = create_graph(api, sleep_chain("Five paid", length=5))  # each sleep: 1 credit
    response = api.post(
        f"/api/graphs/{graph['id']}/execute/", {"budget": budget, **body}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert response.json()["budget"] == budget
    return graph, response.json()["id"]


def test_a_budget_of_3_stops_a_5_paid_node_chain_after_3_and_goes_on_when_approved(
    api, user, worker
):
    _, eid = start(api, 3)
    review = parked_review(api, eid)
    assert review["kind"] == "budget" and review["node_id"] == "s3"
    assert review["data"] == {"budget": 3, "spent": 3, "price": 1, "more": 3}
    assert "budget of 3 credits reached after spending 3" in review["message"]
    assert spent(eid) == 3 and NodeExecution.objects.get(execution_id=eid, node_id="s3").cost == 0
    answer = api.post(f"/api/reviews/{review['id']}/approve/", {}, format="json")
    assert answer.status_code == 200, answer.json()
    record = wait_for_run(api, eid)
    assert record["status"] == "COMPLETED", record
    assert record["budget"] == 6  # raised by itself
    assert spent(eid) == 5


def test_a_reviewer_may_set_the_budget_and_is_asked_again_past_it(api, user, worker):
    _, eid = start(api, 3)
    review = parked_review(api, eid)
    answer = api.post(
        f"/api/reviews/{review['id']}/approve/", {"data": {"budget": 4}}, format="json"
    )
    assert answer.status_code == 200, answer.json()
    wait_until(
        lambda: Wait.objects.filter(execution_id=eid, kind="budget", status="pending").exists(),
        what="the second budget review",
    )
    again = parked_review(api, eid)
    assert again["node_id"] == "s4" and again["data"]["budget"] == 4 and again["data"]["spent"] == 4
    api.post(f"/api/reviews/{again['id']}/reject/", {"message": "enough"}, format="json")
    record = wait_for_run(api, eid)
    assert record["status"] == "FAILED", record
    assert "budget of 4 credits was reached and not raised: enough" in record["error"]
    assert spent(eid) == 4


def test_a_run_within_its_budget_never_asks_and_a_preset_carries_one(api, user, worker):
    graph, eid = start(api, 5)
    assert wait_for_run(api, eid)["status"] == "COMPLETED"
    assert not Wait.objects.filter(execution_id=eid).exists()
    preset = api.post(
        f"/api/graphs/{graph['id']}/presets/", {"name": "tight", "budget": 2}, format="json"
    )
    assert preset.status_code == 201 and preset.json()["budget"] == 2, preset.json()
    run = api.post(
        f"/api/graphs/{graph['id']}/execute/", {"preset": preset.json()["id"]}, format="json"
    ).json()
    assert run["budget"] == 2
    parked_review(api, run["id"])
    assert run_status(run["id"]) == "REVIEW" and spent(run["id"]) == 2
    bad = api.post(f"/api/graphs/{graph['id']}/execute/", {"budget": 0}, format="json")
    assert bad.status_code == 400
