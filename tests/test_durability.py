"""Faults a cluster sees every day, injected into real services mid-run: a worker killed
with SIGKILL, Redis flushed, RabbitMQ restarted, a start message lost. Runs complete with
the right outputs, each node charged once; the watchdog re-drives what was lost."""

import os
import signal
import subprocess
import time

import pytest
import redis
from django.conf import settings
from django.test import override_settings

from config.worker_process import start_worker, stop_worker
from credits.models import CreditTransaction
from executions import recovery
from executions.models import GraphExecution, NodeExecution, Recovery

from .conftest import ROOT, child_database_url, create_graph, nodes_of, wait_for_run
from .documents import link, node

pytestmark = pytest.mark.integration


def execute(api, graph):
    response = api.post(f"/api/graphs/{graph['id']}/execute/", {}, format="json")
    assert response.status_code == 201
    return response.json()["id"]


def drive_until_done(api, eid, timeout=90):
    """Run the watchdog (as beat would) until the run ends; return its record."""
    deadline = time.monotonic() + timeout
    while True:
        record = api.get(f"/api/executions/{eid}/").json()
        if record["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
            return record
        assert time.monotonic() < deadline, f"run still {record['status']}"
        recovery.watchdog()
        time.sleep(0.5)


def charged_once_each(eid):
    references = list(
        CreditTransaction.objects.filter(execution_id=eid, type="USAGE").values_list(
            "reference", flat=True
        )
    )
    return len(references) == len(set(references))


def fan_in(seconds):
    """Two paid sleeps side by side, joined by a template: a chord."""
    return {
        "name": "Fan-in",
        "nodes": [
            node("left", "sleep", seconds=seconds, value="L"),
            node("right", "sleep", seconds=seconds, value="R"),
            node("join", "text_template", format="{{ a }}+{{ b }}"),
            node("out", "output", name="joined"),
        ],
        "links": [
            link("left", "output", "join", "values_#_a"),
            link("right", "output", "join", "values_#_b"),
            link("join", "output", "out", "value"),
        ],
    }


def test_a_worker_killed_with_sigkill_loses_nothing(api, user, worker):
    """A second worker (own processes) takes part of a fan-out; SIGKILL its whole process
    group mid-run. The broker redelivers its unacknowledged tasks to the other worker."""
    env = {**os.environ, "DATABASE_URL": child_database_url()}
    extra = start_worker("doomed", ROOT / ".local" / "doomed-worker.log", env, concurrency=2)
    try:
        document = {
            "name": "Spread",
            "nodes": [
                node("each", "step_through_items", items=list(range(6))),
                node("wait", "sleep", seconds=2),
                node("out", "output", name="items"),
            ],
            "links": [
                link("each", "item", "wait", "value"),
                link("wait", "output", "out", "value"),
            ],
        }
        eid = execute(api, create_graph(api, document))
        deadline = time.monotonic() + 20
        while NodeExecution.objects.filter(execution_id=eid, status="RUNNING").count() < 3:
            assert time.monotonic() < deadline, "the sleeps never spread over both workers"
            time.sleep(0.05)
        children = subprocess.run(
            ["pgrep", "-P", str(extra.pid)], capture_output=True, text=True
        ).stdout.split()
        for pid in [extra.pid, *map(int, children)]:
            os.kill(int(pid), signal.SIGKILL)
        record = drive_until_done(api, eid)
    finally:
        stop_worker(extra)
    assert record["status"] == "COMPLETED", record
    assert sorted(record["outputs"]["items"]) == list(range(6))
    assert all(ne["status"] == "COMPLETED" for ne in nodes_of(record, "wait"))
    assert charged_once_each(eid)


@override_settings(ENGINE_STALL_SECONDS=1)
def test_redis_flushed_mid_run_is_recovered_by_the_watchdog(api, user, worker):
    eid = execute(api, create_graph(api, fan_in(1.5)))
    deadline = time.monotonic() + 20
    while NodeExecution.objects.filter(execution_id=eid, status="RUNNING").count() < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # Chord counters, results and leases all live in Redis: lose them all.
    for url in (settings.REDIS_URL, settings.CELERY_RESULT_BACKEND):
        redis.Redis.from_url(url).flushdb()
    record = drive_until_done(api, eid)
    assert record["status"] == "COMPLETED", record
    assert record["outputs"] == {"joined": ["L+R"]}
    assert Recovery.objects.filter(execution_id=eid, kind="join").exists()
    assert len(nodes_of(record, "join")) == 1 and charged_once_each(eid)


@override_settings(ENGINE_STALL_SECONDS=2)
def test_rabbitmq_restarted_mid_run(api, user, worker):
    document = {
        "name": "Through a broker restart",
        "nodes": [node("s0", "sleep", seconds=1, value="v")]
        + [node(f"s{i}", "sleep", seconds=0.3) for i in range(1, 5)]
        + [node("out", "output", name="done")],
        "links": [link(f"s{i}", "output", f"s{i + 1}", "value") for i in range(4)]
        + [link("s4", "output", "out", "value")],
    }
    eid = execute(api, create_graph(api, document))
    deadline = time.monotonic() + 20
    while (
        NodeExecution.objects.filter(execution_id=eid, node_id="s0", status="RUNNING").count() < 1
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    subprocess.run(
        [str(ROOT / "scripts" / "services.sh"), "restart-rabbitmq"], check=True, capture_output=True
    )
    record = drive_until_done(api, eid, timeout=120)
    assert record["status"] == "COMPLETED", record
    assert record["outputs"] == {"done": ["v"]}
    assert [len(nodes_of(record, f"s{i}")) for i in range(5)] == [1, 1, 1, 1, 1]
    assert charged_once_each(eid)


@override_settings(ENGINE_STALL_SECONDS=0)
def test_a_lost_start_message_is_published_again(api, user, worker, monkeypatch):
    from executions import dispatch

    graph = create_graph(api, fan_in(0))
    monkeypatch.setattr(dispatch, "start_execution", lambda execution_id: None)  # lost
    eid = execute(api, graph)
    time.sleep(0.5)
    assert GraphExecution.objects.get(pk=eid).status == "QUEUED"
    monkeypatch.undo()
    assert recovery.watchdog()["start"] == 1
    record = wait_for_run(api, eid)
    assert record["status"] == "COMPLETED" and record["outputs"] == {"joined": ["L+R"]}
