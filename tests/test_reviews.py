"""Runs that wait for people and for the world, end to end on a real worker: human review
(approve, edit, reject, time out, cancel, race), safe mode, durable sleeps, events, and
waits that outlive workers and a broker restart."""

import json
import os
import signal
import subprocess
import threading
import time
from datetime import timedelta
from http.server import ThreadingHTTPServer

import pytest
import redis
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient

from common.worker_process import ROOT, start_worker, stop_worker
from config.celery import app
from executions import recovery
from executions.events import stream_key
from executions.models import GraphExecution, NodeExecution, Wait
from notifications.models import Notification

from .conftest import child_database_url, create_graph, wait_for_run
from .documents import link, node
from .recording import Recorder
from .test_control import execute, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def recorder():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def posts(server):
    return [json.loads(r["body"]) for r in server.seen if r["path"] == "/post"]


def review_then_post(server, **review):
    """Drafts a value, waits for review, posts it only when approved."""
    return {
        "name": "Draft, review, post",
        "nodes": [
            node("name", "input", name="name"),
            node("draft", "text_template", format="Dear {{ who }}, your order shipped."),
            node("review", "human_review", message="Send this e-mail?", **review),
            node(
                "post",
                "http_request",
                url=f"http://127.0.0.1:{server.server_port}/post",
                method="POST",
            ),
            node("sent", "output", name="sent"),
            node("rejected", "output", name="rejected"),
            node("said", "output", name="said"),
        ],
        "links": [
            link("name", "result", "draft", "values_#_who"),
            link("draft", "output", "review", "data"),
            link("review", "approved_data", "post", "body"),
            link("post", "response", "sent", "value"),
            link("review", "rejected_data", "rejected", "value"),
            link("review", "review_message", "said", "value"),
        ],
    }


def run_status(eid):
    return GraphExecution.objects.values_list("status", flat=True).get(pk=eid)


def parked_review(api, eid):
    """Waits for the run to be in REVIEW; its one pending review, from the inbox."""
    wait_until(lambda: run_status(eid) == "REVIEW", what="the run in review")
    inbox = api.get("/api/reviews/?status=pending").json()["results"]
    mine = [r for r in inbox if r["execution_id"] == eid]
    assert len(mine) == 1, inbox
    return mine[0]


def events_of(eid):
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        return [json.loads(fields[b"e"]) for _, fields in client.xrange(stream_key(eid))]
    finally:
        client.close()


# --- human review ----------------------------------------------------------------------------


def test_approved_data_is_posted_and_the_stream_shows_review_and_decision(
    api, user, worker, recorder
):
    eid = execute(api, create_graph(api, review_then_post(recorder)), {"name": "Ada"})
    review = parked_review(api, eid)
    assert review["data"] == "Dear Ada, your order shipped."
    assert review["message"] == "Send this e-mail?"
    assert review["status"] == "pending" and review["editable"] is False
    assert review["node_id"] == "review" and review["deadline"] is not None  # the longest wait
    node = NodeExecution.objects.get(pk=review["node_execution_id"])
    assert node.status == "REVIEW" and not node.worker.startswith("x")
    assert posts(recorder) == []  # nothing was sent before a person looked
    note = Notification.objects.get(user=user, kind="REVIEW_REQUESTED")
    assert note.data["review_id"] == review["id"] and "Send this e-mail?" in note.message

    answer = api.post(f"/api/reviews/{review['id']}/approve/", {"message": "fine"}, format="json")
    assert answer.status_code == 200, answer.json()
    assert answer.json()["status"] == "approved"
    record = wait_for_run(api, eid)
    assert record["status"] == "COMPLETED", record
    assert posts(recorder) == ["Dear Ada, your order shipped."]
    assert record["outputs"]["said"] == ["fine"]
    assert "rejected" not in record["outputs"]

    seen = events_of(eid)
    statuses = [(e.get("node_id"), e["status"]) for e in seen if e["type"] == "node"]
    assert ("review", "REVIEW") in statuses and ("review", "COMPLETED") in statuses
    assert any(e.get("wait", {}).get("status") == "approved" for e in seen)
    assert "REVIEW" in [e["status"] for e in seen if e["type"] == "execution"]

    again = api.post(f"/api/reviews/{review['id']}/reject/", {}, format="json")
    assert again.status_code == 409, again.json()


def test_an_editable_review_posts_the_reviewers_version(api, user, worker, recorder):
    eid = execute(api, create_graph(api, review_then_post(recorder, editable=True)), {"name": "Bo"})
    review = parked_review(api, eid)
    edited = {"data": "Dear Bo, your order shipped today.", "message": "tweaked"}
    assert (
        api.post(f"/api/reviews/{review['id']}/approve/", edited, format="json").status_code == 200
    )
    record = wait_for_run(api, eid)
    assert record["status"] == "COMPLETED", record
    assert posts(recorder) == ["Dear Bo, your order shipped today."]
    assert api.get(f"/api/reviews/{review['id']}/").json()["edited_data"] == edited["data"]


def test_edits_to_a_review_that_is_not_editable_are_refused(api, user, worker, recorder):
    eid = execute(api, create_graph(api, review_then_post(recorder)), {"name": "Cy"})
    review = parked_review(api, eid)
    refused = api.post(f"/api/reviews/{review['id']}/approve/", {"data": "other"}, format="json")
    assert refused.status_code == 400 and "not editable" in refused.json()["detail"]
    assert api.get(f"/api/reviews/{review['id']}/").json()["status"] == "pending"
    assert run_status(eid) == "REVIEW"


def test_a_rejected_review_sends_nothing(api, user, worker, recorder):
    eid = execute(api, create_graph(api, review_then_post(recorder)), {"name": "Di"})
    review = parked_review(api, eid)
    answer = api.post(
        f"/api/reviews/{review['id']}/reject/", {"message": "too early"}, format="json"
    )
    assert answer.status_code == 200 and answer.json()["status"] == "rejected"
    record = wait_for_run(api, eid)
    assert record["status"] == "COMPLETED", record
    assert record["outputs"]["rejected"] == ["Dear Di, your order shipped."]
    assert record["outputs"]["said"] == ["too early"]
    assert posts(recorder) == []


def test_only_the_owner_decides_and_two_racing_decisions_leave_one(
    api, user, other_api, worker, recorder
):
    eid = execute(api, create_graph(api, review_then_post(recorder)), {"name": "Ed"})
    review = parked_review(api, eid)
    assert other_api.get(f"/api/reviews/{review['id']}/").status_code == 404
    assert (
        other_api.post(f"/api/reviews/{review['id']}/approve/", {}, format="json").status_code
        == 404
    )
    assert other_api.get("/api/reviews/").json()["results"] == []

    answers = []

    def decide(action):
        client = APIClient()
        client.force_authenticate(user)
        answers.append(
            client.post(f"/api/reviews/{review['id']}/{action}/", {}, format="json").status_code
        )

    threads = [threading.Thread(target=decide, args=(a,)) for a in ("approve", "reject") * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [200, 409, 409, 409, 409, 409]
    record = wait_for_run(api, eid)
    decided = Wait.objects.get(pk=review["id"]).status
    assert len(posts(recorder)) == (1 if decided == "approved" else 0), record
    assert NodeExecution.objects.filter(execution_id=eid, node_id="review").count() == 1


@pytest.mark.parametrize(
    ("policy", "status", "outcome"),
    [
        ("approve", "COMPLETED", "sent"),
        ("reject", "COMPLETED", "rejected"),
        ("fail", "FAILED", None),
    ],
)
def test_a_review_past_its_timeout_decides_by_its_policy(
    api, user, worker, recorder, policy, status, outcome
):
    document = review_then_post(recorder, timeout=0.5, on_timeout=policy)
    eid = execute(api, create_graph(api, document), {"name": "Flo"})
    review = parked_review(api, eid)
    time.sleep(0.6)
    recovery.watchdog()  # as beat runs it: the deadline is in the database, not a countdown
    record = wait_for_run(api, eid)
    assert record["status"] == status, record
    assert Wait.objects.get(pk=review["id"]).status == "timed_out"
    assert api.get(f"/api/reviews/{review['id']}/").json()["status"] == "timed_out"
    if outcome:
        assert outcome in record["outputs"]
    else:
        assert "no review decision" in record["error"]
    assert len(posts(recorder)) == (1 if policy == "approve" else 0)


def test_cancelling_a_run_in_review_rejects_its_review(api, user, worker, recorder):
    eid = execute(api, create_graph(api, review_then_post(recorder)), {"name": "Gus"})
    review = parked_review(api, eid)
    assert api.post(f"/api/executions/{eid}/cancel/").status_code == 200
    assert run_status(eid) == "CANCELLED"
    assert Wait.objects.get(pk=review["id"]).status == "rejected"
    assert NodeExecution.objects.get(pk=review["node_execution_id"]).status == "CANCELLED"
    assert api.post(f"/api/reviews/{review['id']}/approve/", {}, format="json").status_code == 409
    time.sleep(0.5)
    assert posts(recorder) == []


def test_a_decision_while_paused_resumes_with_the_run(api, user, worker, recorder):
    eid = execute(api, create_graph(api, review_then_post(recorder)), {"name": "Hal"})
    review = parked_review(api, eid)
    assert api.post(f"/api/executions/{eid}/pause/").status_code == 200
    assert api.post(f"/api/reviews/{review['id']}/approve/", {}, format="json").status_code == 200
    time.sleep(0.5)
    assert run_status(eid) == "PAUSED" and posts(recorder) == []
    assert api.post(f"/api/executions/{eid}/resume/").status_code == 200
    assert wait_for_run(api, eid)["status"] == "COMPLETED"
    assert len(posts(recorder)) == 1


def test_a_review_outlives_a_killed_worker_a_broker_restart_and_redis_flushed(
    api, user, worker, recorder
):
    """The review waits in PostgreSQL only: SIGKILL a worker that may have run the node,
    restart RabbitMQ, lose everything Redis held, and the approval still completes the run."""
    env = {**os.environ, "DATABASE_URL": child_database_url()}
    doomed = start_worker("doomed", ROOT / ".local" / "doomed-review-worker.log", env)
    try:
        eid = execute(api, create_graph(api, review_then_post(recorder)), {"name": "Ivy"})
        review = parked_review(api, eid)
        children = subprocess.run(["pgrep", "-P", str(doomed.pid)], capture_output=True, text=True)
        for pid in [doomed.pid, *map(int, children.stdout.split())]:
            os.kill(pid, signal.SIGKILL)
    finally:
        stop_worker(doomed)
    subprocess.run(
        [str(ROOT / "scripts" / "services.sh"), "restart-rabbitmq"], check=True, capture_output=True
    )
    for url in (settings.REDIS_URL, settings.CELERY_RESULT_BACKEND):
        redis.Redis.from_url(url).flushdb()
    assert run_status(eid) == "REVIEW"
    assert api.post(f"/api/reviews/{review['id']}/approve/", {}, format="json").status_code == 200
    deadline = time.monotonic() + 90
    while run_status(eid) not in ("COMPLETED", "FAILED"):
        assert time.monotonic() < deadline, run_status(eid)
        recovery.watchdog()  # sends what the broker refused while it restarted
        time.sleep(0.5)
    assert run_status(eid) == "COMPLETED"
    assert len(posts(recorder)) == 1


# --- safe mode ------------------------------------------------------------------------------


def safe_post(server, method="POST"):
    return {
        "name": "Safe",
        "safe_mode": True,
        "nodes": [
            node(
                "post",
                "http_request",
                url=f"http://127.0.0.1:{server.server_port}/post",
                method=method,
                body={"pay": 10},
            ),
            node("out", "output", name="response"),
        ],
        "links": [link("post", "response", "out", "value")],
    }


def test_safe_mode_stops_before_a_post_until_approved(api, user, worker, recorder):
    graph = create_graph(api, safe_post(recorder))
    assert graph["safe_mode"] is True
    eid = execute(api, graph)
    review = parked_review(api, eid)
    assert review["kind"] == "approval" and review["data"]["method"] == "POST"
    assert posts(recorder) == []
    assert api.post(f"/api/reviews/{review['id']}/approve/", {}, format="json").status_code == 200
    assert wait_for_run(api, eid)["status"] == "COMPLETED"
    assert posts(recorder) == [{"pay": 10}]


def test_safe_mode_rejected_fails_the_node_and_reads_need_no_approval(api, user, worker, recorder):
    eid = execute(api, create_graph(api, safe_post(recorder)))
    review = parked_review(api, eid)
    api.post(f"/api/reviews/{review['id']}/reject/", {"message": "no"}, format="json")
    record = wait_for_run(api, eid)
    assert record["status"] == "FAILED" and "rejected in review (safe mode): no" in record["error"]
    assert posts(recorder) == []
    reading = wait_for_run(api, execute(api, create_graph(api, safe_post(recorder, "GET"))))
    assert reading["status"] == "COMPLETED", reading
    assert not Wait.objects.filter(execution_id=reading["id"]).exists()


# --- durable waits ---------------------------------------------------------------------------


def test_a_two_hour_sleep_holds_no_worker_and_wakes_at_its_deadline(api, user, worker):
    document = {
        "name": "Later",
        "nodes": [
            node("nap", "sleep", seconds=7200, value="awake"),
            node("out", "output", name="r"),
        ],
        "links": [link("nap", "output", "out", "value")],
    }
    eid = execute(api, create_graph(api, document))
    wait_until(lambda: NodeExecution.objects.filter(execution_id=eid, status="WAITING").exists())
    nap = NodeExecution.objects.get(execution_id=eid, node_id="nap")
    active = app.control.inspect(timeout=2).active() or {}
    assert active, "the worker did not answer"
    assert not any(str(nap.pk) in json.dumps(tasks) for tasks in active.values()), active
    wait = Wait.objects.get(node_execution=nap)
    assert wait.kind == "timer" and wait.deadline > timezone.now() + timedelta(hours=1.9)
    assert run_status(eid) == "RUNNING"  # waiting, not in review
    recovery.watchdog()
    assert NodeExecution.objects.get(pk=nap.pk).status == "WAITING"  # not yet
    Wait.objects.filter(pk=wait.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    recovery.watchdog()
    record = wait_for_run(api, eid)
    assert record["status"] == "COMPLETED" and record["outputs"] == {"r": ["awake"]}


def event_graph(key, timeout=None):
    wait = node("wait", "wait_for_event", key=key, **({"timeout": timeout} if timeout else {}))
    return {
        "name": "Waits for the world",
        "nodes": [wait, node("out", "output", name="payload")],
        "links": [link("wait", "payload", "out", "value")],
    }


def test_an_event_wakes_the_owners_runs_waiting_on_its_key(api, user, other_api, worker):
    graph = create_graph(api, event_graph("order-7"))
    first, second = execute(api, graph), execute(api, graph)
    for eid in (first, second):
        wait_until(
            lambda eid=eid: NodeExecution.objects.filter(
                execution_id=eid, status="WAITING"
            ).exists()
        )
    stranger = other_api.post("/api/events/", {"key": "order-7", "payload": 1}, format="json")
    assert stranger.status_code == 200 and stranger.json() == {"woken": 0}
    assert api.post("/api/events/", {"key": "order-8"}, format="json").json() == {"woken": 0}
    answer = api.post("/api/events/", {"key": "order-7", "payload": {"paid": True}}, format="json")
    assert answer.json() == {"woken": 2}
    for eid in (first, second):
        record = wait_for_run(api, eid)
        assert record["outputs"] == {"payload": [{"paid": True}]}, record
    assert api.post("/api/events/", {"key": "order-7"}, format="json").json() == {"woken": 0}
    assert api.post("/api/events/", {"payload": 1}, format="json").status_code == 400


def test_an_event_that_never_comes_fails_its_node_at_the_timeout(api, user, worker):
    eid = execute(api, create_graph(api, event_graph("never", timeout=0.5)))
    wait_until(lambda: NodeExecution.objects.filter(execution_id=eid, status="WAITING").exists())
    time.sleep(0.6)
    recovery.watchdog()
    record = wait_for_run(api, eid)
    assert record["status"] == "FAILED" and "no event 'never' came in time" in record["error"]


def test_a_review_in_one_branch_of_a_fan_in_holds_only_its_own_values(api, user, worker):
    """Both branches start together as one chord; the review parks and leaves it, the other
    branch's value waits at the join, and the approval completes the join."""
    document = {
        "name": "Fan-in with a review",
        "nodes": [
            node("check", "human_review", data="A"),
            node("other", "text_template", format="B"),
            node("join", "text_template", format="{{ a }}+{{ b }}"),
            node("out", "output", name="joined"),
        ],
        "links": [
            link("check", "approved_data", "join", "values_#_a"),
            link("other", "output", "join", "values_#_b"),
            link("join", "output", "out", "value"),
        ],
    }
    eid = execute(api, create_graph(api, document))
    review = parked_review(api, eid)
    assert NodeExecution.objects.get(execution_id=eid, node_id="other").status == "COMPLETED"
    assert NodeExecution.objects.get(execution_id=eid, node_id="join").status == "INCOMPLETE"
    # they went out as one chord; the parked member left it
    assert NodeExecution.objects.get(execution_id=eid, node_id="other").join_id is not None
    assert NodeExecution.objects.get(execution_id=eid, node_id="check").join_id is None
    assert api.post(f"/api/reviews/{review['id']}/approve/", {}, format="json").status_code == 200
    record = wait_for_run(api, eid)
    assert record["status"] == "COMPLETED" and record["outputs"] == {"joined": ["A+B"]}, record


def test_the_admin_inbox_lists_pending_reviews_and_approves_them(api, user, worker, client):
    from django.contrib.auth import get_user_model

    document = {
        "name": "Admin decides",
        "nodes": [node("check", "human_review", data={"amount": 5}, message="Pay?"),
                  node("out", "output", name="paid")],
        "links": [link("check", "approved_data", "out", "value")],
    }  # fmt: skip
    eid = execute(api, create_graph(api, document))
    review = parked_review(api, eid)
    staff = get_user_model().objects.create_superuser("inbox", "inbox@example.com", "pw-123456")
    client.force_login(staff)
    page = client.get("/admin/executions/wait/")
    assert page.status_code == 200 and "Reviews to decide" in page.content.decode()
    assert review["id"] in page.content.decode()
    answer = client.post(
        "/admin/executions/wait/", {"action": "approve", "_selected_action": [review["id"]]}
    )
    assert answer.status_code == 302
    record = wait_for_run(api, eid)
    assert record["status"] == "COMPLETED" and record["outputs"] == {"paid": [{"amount": 5}]}
    assert Wait.objects.get(pk=review["id"]).decided_by == staff


def test_an_event_trigger_wakes_its_graphs_runs_waiting_on_the_key_in_its_payload(
    api, user, worker, client
):
    from .test_triggers import deliver, make_trigger

    graph = create_graph(api, event_graph("order-9"))
    other_graph = create_graph(api, event_graph("order-9"))
    assert (
        api.post(
            f"/api/graphs/{graph['id']}/triggers/", {"event_key": "x..y"}, format="json"
        ).status_code
        == 400
    )
    trigger = make_trigger(api, graph, event_key="order.id")
    assert trigger["event_key"] == "order.id"
    mine, elsewhere = execute(api, graph), execute(api, other_graph)
    for eid in (mine, elsewhere):
        wait_until(
            lambda eid=eid: NodeExecution.objects.filter(
                execution_id=eid, status="WAITING"
            ).exists()
        )
    missing = deliver(client, trigger, {"order": {}})
    assert missing.status_code == 422 and "no event key" in missing.json()["detail"]
    answer = deliver(
        client,
        trigger,
        {"order": {"id": "order-9"}, "paid": True},
        headers={"X-Delivery-Id": "d-1"},
    )
    assert answer.status_code == 202, answer.json()
    assert answer.json() == {"execution_id": None, "outcome": "event", "woken": 1}
    record = wait_for_run(api, mine)
    assert record["outputs"] == {"payload": [{"order": {"id": "order-9"}, "paid": True}]}
    assert run_status(elsewhere) == "RUNNING"  # another graph's run waits on
    again = deliver(client, trigger, {"order": {"id": "order-9"}}, headers={"X-Delivery-Id": "d-1"})
    assert again.json()["outcome"] == "duplicate"
    listed = api.get(f"/api/triggers/{trigger['id']}/deliveries/").json()["results"]
    assert sorted((d["status"], d["woken"]) for d in listed) == [
        ("accepted", 1),
        ("rejected", None),
    ]


def test_resuming_a_run_cancelled_in_review_asks_again(api, user, worker, recorder):
    eid = execute(api, create_graph(api, review_then_post(recorder)), {"name": "Jo"})
    first = parked_review(api, eid)
    assert api.post(f"/api/executions/{eid}/cancel/").status_code == 200
    assert api.post(f"/api/executions/{eid}/resume/").status_code == 200
    wait_until(lambda: run_status(eid) == "REVIEW", what="the review asked again")
    pending = api.get("/api/reviews/?status=pending").json()["results"]
    assert [r["execution_id"] for r in pending] == [eid] and pending[0]["id"] != first["id"]
    assert (
        api.post(f"/api/reviews/{pending[0]['id']}/approve/", {}, format="json").status_code == 200
    )
    assert wait_for_run(api, eid)["status"] == "COMPLETED"
    assert posts(recorder) == ["Dear Jo, your order shipped."]
