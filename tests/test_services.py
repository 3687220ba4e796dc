"""Service-level races and repeats, on the real database (no worker: dispatch is recorded)."""

import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from executions import claims, dispatch, joins, node_runs
from executions.engine import Status
from executions.models import GraphExecution, NodeExecution
from executions.plans import plan_for_version
from executions.propagation import propagate
from graphs.services import graph_create

from .documents import link, node

JOIN = {
    "name": "Join",
    "nodes": [
        node("a", "store_value", input=1),
        node("b", "store_value", input=2),
        node("j", "text_template", format="{{ x }}{{ y }}"),
    ],
    "links": [link("a", "output", "j", "values_#_x"), link("b", "output", "j", "values_#_y")],
}


@pytest.fixture
def sent(monkeypatch):
    """Records what would be published instead of publishing it."""
    groups = []
    monkeypatch.setattr(dispatch, "send_groups", lambda eid, vid, g, **_: groups.extend(g))
    monkeypatch.setattr(dispatch, "start_execution", lambda eid: None)
    return groups


def running_execution(user, document):
    version = graph_create(owner=user, document=document)
    execution = GraphExecution.objects.create(
        graph=version.graph, graph_version=version, user=user, status=Status.RUNNING
    )
    return execution, version


@pytest.mark.django_db
def test_a_node_is_claimed_once(user, sent):
    execution, _ = running_execution(user, JOIN)
    ne = NodeExecution.objects.create(
        execution=execution, node_id="a", block="store_value", status=Status.QUEUED
    )
    assert claims.node_claim(ne.pk) is not None
    assert claims.node_claim(ne.pk) is None  # a duplicate delivery finds it RUNNING
    # A redelivery leaves alone a node that started just now (its owner is taking its lease)
    assert claims.node_claim(ne.pk, take_over=True) is None
    NodeExecution.objects.filter(pk=ne.pk).update(
        started_at=timezone.now() - timedelta(seconds=claims.TAKE_OVER_MARGIN_SECONDS + 1)
    )
    assert claims.node_claim(ne.pk, take_over=True) is not None  # ...and takes it over later
    ne.refresh_from_db()
    assert ne.attempts == 2 and ne.status == Status.RUNNING


@pytest.mark.django_db
def test_a_redelivery_refused_for_a_young_node_is_not_taken_for_a_duplicate(user, sent):
    """The claim refuses a node that started just under the margin ago; asked a moment
    later, `just_started` must agree (else the message was dropped and the node stalled)."""
    execution, _ = running_execution(user, JOIN)
    almost = timedelta(seconds=claims.TAKE_OVER_MARGIN_SECONDS - 0.05)
    ne = NodeExecution.objects.create(
        execution=execution, node_id="a", block="store_value", status=Status.RUNNING,
        started_at=timezone.now() - almost,
    )  # fmt: skip
    assert claims.node_claim(ne.pk, take_over=True) is None
    time.sleep(0.1)  # now past the bare margin
    assert claims.just_started(ne.pk)


@pytest.mark.django_db
def test_a_node_of_an_ended_run_never_starts(user, sent):
    execution, _ = running_execution(user, JOIN)
    ne = NodeExecution.objects.create(
        execution=execution, node_id="a", block="store_value", status=Status.QUEUED
    )
    GraphExecution.objects.filter(pk=execution.pk).update(status=Status.FAILED)
    assert claims.node_claim(ne.pk) is None
    ne.refresh_from_db()
    assert ne.status == Status.CANCELLED and ne.attempts == 0


@pytest.mark.django_db
def test_a_repeated_chord_join_changes_nothing(user, sent):
    execution, version = running_execution(user, JOIN)
    chord = uuid.uuid4()  # members of one chord carry its id (settling.settle)
    members = [
        NodeExecution.objects.create(
            execution=execution,
            node_id=nid,
            block="store_value",
            status=Status.COMPLETED,
            output_data={"output": [value]},
            join_id=chord,
        )
        for nid, value in (("a", "x"), ("b", "y"))
    ]
    GraphExecution.objects.filter(pk=execution.pk).update(active_count=3)
    ids = [m.pk for m in members]
    joins.chord_join(execution.pk, version.pk, ids)
    joins.chord_join(execution.pk, version.pk, ids)
    joined = NodeExecution.objects.get(node_id="j")
    assert joined.status == Status.QUEUED
    assert joined.input_data["values"] == {"x": "x", "y": "y"}
    execution.refresh_from_db()
    assert execution.active_count == 1  # the two members and the join released, j added


@pytest.mark.django_db
def test_a_join_waits_for_members_still_running(user, sent):
    execution, version = running_execution(user, JOIN)
    running = NodeExecution.objects.create(
        execution=execution,
        node_id="a",
        block="store_value",
        status=Status.RUNNING,
        join_id=uuid.uuid4(),
    )
    with pytest.raises(joins.JoinNotReady):
        joins.chord_join(execution.pk, version.pk, [running.pk])


@pytest.mark.django_db(transaction=True)
def test_two_workers_delivering_to_one_join_node_make_one_execution(user, sent):
    """Each round, two threads (two connections) deliver the two inputs of `j` at once.
    The per-sink lock must leave exactly one execution of `j`, holding both values."""
    for _ in range(15):
        execution, version = running_execution(user, JOIN)
        plan = plan_for_version(version.pk)
        barrier = threading.Barrier(2)
        errors = []

        def deliver(
            node_id, value, execution_id=execution.pk, plan=plan, barrier=barrier, errors=errors
        ):
            try:
                with transaction.atomic():
                    barrier.wait(timeout=10)
                    propagate(execution_id, plan, [(node_id, [("output", value)])])
            except Exception as exc:  # surfaced below
                errors.append(exc)
            finally:
                connection.close()

        threads = [
            threading.Thread(target=deliver, args=("a", "x")),
            threading.Thread(target=deliver, args=("b", "y")),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        runs = list(NodeExecution.objects.filter(execution=execution, node_id="j"))
        assert len(runs) == 1, [r.input_data for r in runs]
        assert runs[0].status == Status.QUEUED
        assert runs[0].input_data["values"] == {"x": "x", "y": "y"}


def running_node(user) -> NodeExecution:
    """A node execution left RUNNING (attempt 1) by some owner a while ago, in a running run."""
    execution, _ = running_execution(user, JOIN)
    return NodeExecution.objects.create(
        execution=execution,
        node_id="a",
        block="store_value",
        status=Status.RUNNING,
        attempts=1,
        input_data={"input": 1},
        started_at=timezone.now() - timedelta(seconds=30),
    )


@pytest.mark.django_db
def test_a_redelivered_task_leaves_a_node_whose_owner_is_alive(user, sent):
    from executions.leases import NodeLease, _redis

    ne = running_node(user)
    lease = NodeLease(ne.pk)
    # A live owner on another host holds the lease.
    _redis().set(lease.key, "other-host:123:abc", px=60_000)
    try:
        with pytest.raises(node_runs.LeaseHeld):
            node_runs.node_process(ne.pk, take_over=True)
        ne.refresh_from_db()
        assert ne.attempts == 1 and ne.status == Status.RUNNING  # not started again
        # A fresh duplicate delivery does nothing at all.
        node_runs.node_process(ne.pk, take_over=False)
        ne.refresh_from_db()
        assert ne.attempts == 1
    finally:
        _redis().delete(lease.key)


@pytest.mark.django_db
def test_a_redelivered_task_takes_over_from_a_dead_local_owner(user, sent):
    import socket
    import subprocess

    from executions.leases import NodeLease, _redis

    ne = running_node(user)
    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid is now free: a dead owner on this host
    _redis().set(NodeLease(ne.pk).key, f"{socket.gethostname()}:{dead.pid}:x", px=60_000)
    node_runs.node_process(ne.pk, take_over=True)
    ne.refresh_from_db()
    assert ne.status == Status.COMPLETED and ne.attempts == 2
    assert not _redis().exists(NodeLease(ne.pk).key)  # released by its new owner


@pytest.mark.django_db
def test_a_join_lets_a_parked_member_leave_and_a_repeat_changes_nothing(user, sent):
    """A member parked in a wait leaves the chord (it carries its own outputs on once
    resumed); the join releases itself and the finished member, once."""
    execution, version = running_execution(user, JOIN)
    chord = uuid.uuid4()
    parked = NodeExecution.objects.create(
        execution=execution, node_id="a", block="store_value", status=Status.WAITING,
        join_id=chord,
    )  # fmt: skip
    done = NodeExecution.objects.create(
        execution=execution, node_id="b", block="store_value", status=Status.COMPLETED,
        output_data={"output": ["y"]}, join_id=chord,
    )  # fmt: skip
    GraphExecution.objects.filter(pk=execution.pk).update(active_count=3, parked_count=1)
    for _ in range(2):
        joins.chord_join(execution.pk, version.pk, [parked.pk, done.pk])
    parked.refresh_from_db()
    assert parked.join_id is None and not parked.propagated and parked.status == Status.WAITING
    assert NodeExecution.objects.get(node_id="j").input_data == {"values_#_y": "y"}
    execution.refresh_from_db()
    assert execution.active_count == 1  # the parked member only: b and the join released
