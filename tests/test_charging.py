"""Charging runs end to end: a real worker, real RabbitMQ, Redis and PostgreSQL."""

import time

import pytest
from django.db.models import Sum

from credits.models import BlockCost, CreditTransaction
from credits.services import balance_of, ledger_apply
from executions.models import GraphExecution, NodeExecution
from executions.tasks import run_node

from .conftest import create_graph, nodes_of, run_graph, wait_for_run
from .documents import link, node

pytestmark = pytest.mark.integration


def set_balance(user, amount):
    delta = amount - balance_of(user.pk)
    ledger_apply(user_id=user.pk, amount=delta, type="ADJUSTMENT", reference=f"set:{amount}")


def ledger_sum(**filters):
    return CreditTransaction.objects.filter(**filters).aggregate(s=Sum("amount"))["s"] or 0


def sleeps(count, seconds=0):
    nodes = [node("start", "input", name="x", value="v")]
    links = []
    previous, pin = "start", "result"
    for i in range(count):
        nodes.append(node(f"s{i}", "sleep", seconds=seconds))
        links.append(link(previous, pin, f"s{i}", "value"))
        previous, pin = f"s{i}", "output"
    nodes.append(node("out", "output", name="done"))
    links.append(link(previous, pin, "out", "value"))
    return {"name": f"{count} sleeps", "nodes": nodes, "links": links}


def test_each_node_pays_and_the_stats_match_the_ledger(api, user, worker):
    # sleep: 1 per run (its own price) plus, overridden here, 10 per second settled after.
    BlockCost.objects.create(block="sleep", cost_per_second=10)
    record = run_graph(api, sleeps(2, seconds=0.3))
    assert record["status"] == "COMPLETED", record
    for ne in nodes_of(record, "s0") + nodes_of(record, "s1"):
        rows = CreditTransaction.objects.filter(node_execution_id=ne["id"]).order_by("id")
        assert [r.reference for r in rows] == [f"usage:{ne['id']}", f"usage-settle:{ne['id']}"]
        assert rows[0].amount == -1 and rows[1].amount == -3  # 0.3 s x 10
        assert ne["cost"] == 4 == -sum(r.amount for r in rows)
        assert (
            rows[0].metadata["block"] == "sleep"
            and rows[0].metadata["graph_id"] == record["graph_id"]
        )
    assert nodes_of(record, "start")[0]["cost"] == 0  # free blocks pay nothing
    assert record["stats"]["cost"] == 8 == -ledger_sum(execution_id=record["id"])
    assert balance_of(user.pk) == 92 == ledger_sum(user=user)


def test_a_run_that_runs_out_of_credits_fails_and_starts_nothing_more(api, user, worker):
    set_balance(user, 2)
    record = run_graph(api, sleeps(4))
    assert record["status"] == "FAILED"
    assert "insufficient credits" in record["error"] and "'s2'" in record["error"]
    assert [nodes_of(record, f"s{i}")[0]["status"] for i in range(3)] == [
        "COMPLETED",
        "COMPLETED",
        "FAILED",
    ]
    assert "insufficient credits: balance 0, cost 1" in nodes_of(record, "s2")[0]["error"]
    assert nodes_of(record, "s3") == [] and nodes_of(record, "out") == []
    assert balance_of(user.pk) == 0 == ledger_sum(user=user)
    assert record["stats"]["cost"] == 2


def test_a_fan_out_pays_for_exactly_what_the_balance_covers(api, user, worker):
    set_balance(user, 3)
    document = {
        "name": "Many paid",
        "nodes": [
            node("each", "step_through_items", items=list(range(12))),
            node("wait", "sleep", seconds=0),
            node("out", "output", name="o"),
        ],
        "links": [link("each", "item", "wait", "value"), link("wait", "output", "out", "value")],
    }
    record = run_graph(api, document)
    assert record["status"] == "FAILED" and "insufficient credits" in record["error"]
    # A failed run stops nothing already running: a node claimed just before the failure
    # ends a moment later (here: refused its charge).
    deadline = time.monotonic() + 10
    while NodeExecution.objects.filter(execution_id=record["id"], status="RUNNING").exists():
        assert time.monotonic() < deadline, "a node of the failed run never ended"
        time.sleep(0.05)
    record = api.get(f"/api/executions/{record['id']}/").json()
    waits = nodes_of(record, "wait")
    assert sum(1 for ne in waits if ne["status"] == "COMPLETED") == 3
    assert all(ne["cost"] == 0 for ne in waits if ne["status"] != "COMPLETED")
    assert {ne["status"] for ne in waits} <= {"COMPLETED", "FAILED", "CANCELLED"}
    assert CreditTransaction.objects.filter(user=user, type="USAGE").count() == 3
    assert balance_of(user.pk) == 0 == ledger_sum(user=user)


def test_a_node_task_delivered_twice_is_charged_once(api, user, worker):
    record = run_graph(api, sleeps(1))
    ne = NodeExecution.objects.get(execution_id=record["id"], node_id="s0")
    before = CreditTransaction.objects.count()
    again = run_node.apply_async(args=[ne.pk, record["id"]], ignore_result=False)
    again.get(timeout=30)
    assert CreditTransaction.objects.count() == before
    ne.refresh_from_db()
    assert ne.cost == 1 and ne.attempts == 1


def test_an_execution_refused_for_credits_creates_nothing(api, user, worker):
    set_balance(user, 0)
    graph = create_graph(api, sleeps(1))
    response = api.post(f"/api/graphs/{graph['id']}/execute/", {}, format="json")
    assert response.status_code == 402
    assert not GraphExecution.objects.exists() and not NodeExecution.objects.exists()
    set_balance(user, 5)
    eid = api.post(f"/api/graphs/{graph['id']}/execute/", {}, format="json").json()["id"]
    assert wait_for_run(api, eid)["status"] == "COMPLETED"
