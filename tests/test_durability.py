"""Faults a cluster sees every day, injected into real services mid-run: a worker killed
with SIGKILL, Redis flushed, RabbitMQ restarted, a start message lost. Runs complete with
the right outputs, each node charged once; the watchdog re-drives what was lost."""

import json
import os
import signal
import subprocess
import time

import pytest
import redis
from django.conf import settings
from django.test import override_settings

from common.worker_process import start_worker, stop_worker
from credits.models import CreditTransaction
from executions import recovery
from executions.models import GraphExecution, NodeExecution, Recovery

from .conftest import ROOT, child_database_url, create_graph, nodes_of, wait_for_run
from .documents import link, node, sleep_chain

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


@override_settings(ENGINE_STALL_SECONDS=0, ENGINE_MAX_RUNNING_PER_USER=1)
def test_a_lost_start_message_is_published_again(api, user, worker, monkeypatch):
    """A run waiting for a slot is started by a message its owner's other run publishes as
    it ends (here: cancelled in this process); if that message is lost, the watchdog starts
    the run."""
    from executions import dispatch

    first = execute(api, create_graph(api, sleep_chain("Holds the slot", first_seconds=5)))
    graph = create_graph(api, fan_in(0))
    eid = execute(api, graph)
    assert GraphExecution.objects.get(pk=eid).status == "QUEUED"  # no slot yet
    monkeypatch.setattr(dispatch, "start_waiting", lambda user_id: None)  # lost
    assert api.post(f"/api/executions/{first}/cancel/").json()["status"] == "CANCELLED"
    time.sleep(0.5)
    assert GraphExecution.objects.get(pk=eid).status == "QUEUED"
    monkeypatch.undo()
    assert recovery.watchdog()["start"] == 1
    record = wait_for_run(api, eid)
    assert record["status"] == "COMPLETED" and record["outputs"] == {"joined": ["L+R"]}


def test_a_broker_outage_delays_a_chain_by_seconds_not_the_watchdogs_minute(api, user, worker):
    """A node finishes while RabbitMQ refuses connections: its next node's message stays in
    the outbox, and the worker's relay sends it once the broker is back. No watchdog runs
    here (its stall threshold is a minute): the gap is the relay's and the worker's
    reconnection's alone."""
    from executions import outbox
    from executions.models import OutboxMessage

    graph = create_graph(api, sleep_chain("Through a broker outage", first_seconds=1.5))
    log_start = WORKER_LOG.stat().st_size
    eid = execute(api, graph)
    services = str(ROOT / "scripts" / "services.sh")
    wait_until(lambda: status_of(eid, "s0") == "RUNNING", 20)
    subprocess.run([services, "stop-rabbitmq-app"], check=True, capture_output=True)
    try:
        wait_until(lambda: status_of(eid, "s1") == "QUEUED", 20)  # committed, not sent
        time.sleep(3)  # longer than OUTBOX_RELAY_AFTER: the relay tries, and is refused
        assert OutboxMessage.objects.filter(body__run=eid).exists()
        count, oldest = outbox.waiting()  # what /metrics shows operators
        assert count >= 1 and oldest >= 2
    finally:
        subprocess.run([services, "start-rabbitmq-app"], check=True, capture_output=True)
    back = time.monotonic()
    wait_until(lambda: status_of(eid, "s1") not in ("QUEUED", None), 30)
    gap = time.monotonic() - back
    record = wait_for_run(api, eid, timeout=30)
    print(f"broker back -> next node started: {gap:.1f} s")
    assert gap < 10, f"the next node started {gap:.1f} s after the broker came back"
    assert record["status"] == "COMPLETED" and record["outputs"] == {"done": ["v"]}
    assert [len(nodes_of(record, f"s{i}")) for i in range(3)] == [1, 1, 1]
    assert not Recovery.objects.filter(execution_id=eid).exists()  # no watchdog was needed
    assert not OutboxMessage.objects.filter(body__run=eid).exists()
    assert charged_once_each(eid)
    first = NodeExecution.objects.get(execution_id=eid, node_id="s0")
    assert first.attempts == 1
    wait_until(lambda: "duplicate delivery" in worker_log_since(log_start), 10)
    assert_couldnt_ack_sequence(worker_log_since(log_start), first)


WORKER_LOG = ROOT / ".local" / "test-worker.log"


def worker_log_since(offset):
    with open(WORKER_LOG, errors="replace") as log:
        log.seek(offset)
        return log.read()


def assert_couldnt_ack_sequence(log, first):
    """What "Couldn't ack" means, in the order the worker logs it (README): the node's task
    finishes while the broker is gone; its first delivery cannot be acknowledged on the dead
    channel; RabbitMQ delivers it again after the reconnect; that delivery finds the node
    recorded and does nothing. Acknowledged once, lost never, run once."""
    received = f"[{first.task_id}] received"
    steps = [
        received,  # the first delivery
        "Connection to broker lost",
        f"[{first.task_id}] succeeded",  # the node ran (in the pool process)
        "Connected to amqp",  # the consumer is back
        received,  # the second delivery of the same message
        "Couldn't ack",  # the first one's ack, on the channel that died
        f"duplicate delivery: node execution {first.pk} is already COMPLETED",
    ]
    position = 0
    for step in steps[:4]:
        position = log.index(step, position) + len(step)
    # The last three are handled by different processes: their order in the log may vary.
    for step in steps[4:]:
        assert step in log[position:], f"{step!r} not logged after the reconnect"


def status_of(eid, node_id):
    return (
        NodeExecution.objects.filter(execution_id=eid, node_id=node_id)
        .values_list("status", flat=True)
        .first()
    )


def wait_until(condition, timeout):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


@pytest.mark.django_db(transaction=True)
def test_the_outbox_keeps_what_the_broker_refused_and_the_relay_sends_it_once_in_order():
    from django.db import transaction

    from executions import outbox
    from executions.models import OutboxMessage

    sent = []

    def refuse(kind, body):
        raise ConnectionRefusedError("broker down")

    with transaction.atomic():
        outbox.record("start", {"run": "a"}, refuse)
        assert OutboxMessage.objects.count() == 1  # written with the transaction
    outbox.record("start", {"run": "b"}, refuse)  # outside one: written because refused
    with transaction.atomic():
        outbox.record("start", {"run": "c"}, lambda kind, body: sent.append(body["run"]))
        transaction.set_rollback(True)  # a rolled-back decision is neither sent nor kept
    with transaction.atomic():
        outbox.record("start", {"run": "d"}, lambda kind, body: sent.append(body["run"]))
    assert sent == ["d"]
    assert sorted(OutboxMessage.objects.values_list("body__run", flat=True)) == ["a", "b"]

    assert outbox.relay(sent.append, older_than=60) == 0  # too young: their sends may run
    assert outbox.relay(refuse, older_than=0) == 0  # still down: both stay
    assert OutboxMessage.objects.count() == 2

    def fail_second(kind, body):
        if body["run"] == "b":
            raise ConnectionRefusedError("broker down again")
        sent.append(body["run"])

    assert outbox.relay(fail_second, older_than=0) == 1  # stops at the first refusal
    assert list(OutboxMessage.objects.values_list("body__run", flat=True)) == ["b"]
    assert outbox.relay(lambda kind, body: sent.append(body["run"]), older_than=0) == 1
    assert sent == ["d", "a", "b"] and OutboxMessage.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_long_send_is_not_sent_again_by_the_relay_while_it_runs():
    """A message of many tasks is sent holding its row's lock: a relay pass during the send
    (here: the oldest message, relayed at once, from another connection) skips it."""
    import threading

    from django.db import connection, transaction

    from executions import outbox
    from executions.models import OutboxMessage

    sent, relayed = [], []

    def slow_send(kind, body):
        def relay_meanwhile():
            relayed.append(outbox.relay(lambda k, b: sent.append(("relay", b)), older_than=0))
            connection.close()

        other = threading.Thread(target=relay_meanwhile)
        other.start()
        other.join()
        sent.append(("sender", body))

    with transaction.atomic():
        outbox.record("nodes", {"run": "big"}, slow_send, long_send=True)
    assert sent == [("sender", {"run": "big"})] and relayed == [0]
    assert not OutboxMessage.objects.exists()  # sent and cleared together


@pytest.mark.django_db(transaction=True)
def test_a_chain_hops_outbox_row_is_the_message_its_send_publishes(api, user, monkeypatch):
    """A chain hop writes its next node's message to the outbox in its own statement: the
    row (what the relay sends if the broker refuses) is the body the send publishes, and it
    names the queued execution under its stored task id."""
    from executions import dispatch, outbox
    from executions.models import OutboxMessage
    from executions.node_runs import node_process

    sent = []

    def refuse(kind, body):
        sent.append((kind, body))
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(dispatch, "send_message", refuse)
    graph = create_graph(
        api,
        {
            "name": "Two hops",
            "nodes": [node("a", "store_value", input="v"), node("b", "store_value")],
            "links": [link("a", "output", "b", "input")],
        },
    )
    eid = execute(api, graph)
    first = NodeExecution.objects.get(execution_id=eid, node_id="a")
    node_process(first.pk, take_over=False, execution_id=eid)
    second = NodeExecution.objects.get(execution_id=eid, node_id="b")
    assert second.status == "QUEUED" and second.input_data == {"input": "v"}
    kind, body = sent[-1][0], json.loads(json.dumps(sent[-1][1]))  # as the row stores it
    assert kind == "nodes"
    assert body == {
        "run": str(eid),
        "version": GraphExecution.objects.get(pk=eid).graph_version_id,
        "groups": [[[second.pk, "b", "store_value", second.task_id]]],
    }
    row = OutboxMessage.objects.get(body__run=str(eid), body__groups__0__0__0=second.pk)
    assert (row.kind, row.body) == (kind, body)  # what the relay would send
    relayed = []
    assert outbox.relay(lambda k, b: relayed.append((k, b)), older_than=0) >= 1
    assert (kind, body) in relayed


def orphaned_run(api, user, seconds=0.2):
    """A run whose one sleep node was left RUNNING two hours ago by a worker that vanished
    without the broker redelivering its task (no lease, no message)."""
    from datetime import timedelta

    from django.utils import timezone

    graph = create_graph(
        api,
        {
            "name": "Orphan",
            "nodes": [
                node("nap", "sleep", seconds=seconds, value="up"),
                node("out", "output", name="v"),
            ],
            "links": [link("nap", "output", "out", "value")],
        },
    )
    long_ago = timezone.now() - timedelta(hours=2)
    version = GraphExecution._meta.get_field("graph_version").related_model.objects.get(
        graph_id=graph["id"]
    )
    run = GraphExecution.objects.create(
        graph_id=graph["id"], graph_version=version, user=user, status="RUNNING",
        active_count=1, started_at=long_ago, progressed_at=long_ago,
    )  # fmt: skip
    GraphExecution.objects.filter(pk=run.pk).update(root_id=run.pk)
    orphan = NodeExecution.objects.create(
        execution=run, node_id="nap", block="sleep", status="RUNNING", attempts=1,
        input_data={"seconds": seconds, "value": "up"}, task_id="the-lost-task",
        started_at=long_ago,
    )  # fmt: skip
    return run, orphan


@override_settings(ENGINE_STALL_SECONDS=0)
def test_an_orphaned_node_is_taken_over_under_a_stored_task_id_with_its_time_limits(
    api, user, worker
):
    run, orphan = orphaned_run(api, user)
    log_start = WORKER_LOG.stat().st_size
    assert recovery.watchdog()["orphan"] == 1
    record = wait_for_run(api, run.pk)
    assert record["status"] == "COMPLETED" and record["outputs"] == {"v": ["up"]}, record
    orphan.refresh_from_db()
    assert orphan.attempts == 2 and orphan.task_id != "the-lost-task"
    # The task the worker ran is the one the row names: a cancel's revoke can reach it.
    wait_until(lambda: f"[{orphan.task_id}] succeeded" in worker_log_since(log_start), 10)
    assert Recovery.objects.filter(execution_id=run.pk, kind="orphan").exists()


@pytest.mark.django_db
def test_a_take_over_is_published_with_the_nodes_time_limits(api, user, monkeypatch):
    from executions import dispatch
    from executions.propagation import Queued

    run, orphan = orphaned_run(api, user)
    sent = []

    class Recorded:
        def __init__(self, name, **options):
            sent.append((name, options))

        def apply_async(self):
            pass

    monkeypatch.setattr(dispatch.current_app, "signature", Recorded)
    take_over = Queued(orphan.pk, "nap", "sleep", "new-task-id")
    dispatch.send_message(
        "take_over",
        {
            "run": str(run.pk),
            "version": run.graph_version_id,
            "node": list(vars(take_over).values()),
        },
    )
    ((name, options),) = sent
    assert name == "executions.run_node" and options["kwargs"] == {"take_over": True}
    assert options["task_id"] == "new-task-id" and options["queue"] == settings.NODE_QUEUE
    assert options["soft_time_limit"] > 0
    assert options["time_limit"] == options["soft_time_limit"] + dispatch.HARD_LIMIT_GRACE
