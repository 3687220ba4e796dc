"""`Idempotency-Key` on POST /api/graphs/, /execute/ and /api/schedules/: the same key and
request answer the first response again and create nothing; another request with the key
is 422; concurrent requests with one key create one thing."""

import json
import threading
import urllib.error
import urllib.request
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.services import token_issue
from executions.models import GraphExecution
from graphs.models import Graph
from idempotency.models import IdempotentRequest
from schedules.models import Schedule

from .conftest import create_graph, wait_for_run
from .documents import greeting

pytestmark = pytest.mark.django_db


def post(api, path, body, key):
    return api.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_a_repeated_execute_answers_the_first_run(api):
    graph = create_graph(api, greeting())
    path = f"/api/graphs/{graph['id']}/execute/"
    first = post(api, path, {"inputs": {"who": "Ada"}}, "run-1")
    again = post(api, path, {"inputs": {"who": "Ada"}}, "run-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert GraphExecution.objects.count() == 1
    other = post(api, path, {"inputs": {"who": "Bob"}}, "run-1")
    assert other.status_code == 422 and "another request" in other.json()["detail"]
    assert GraphExecution.objects.count() == 1
    assert post(api, path, {"inputs": {"who": "Bob"}}, "run-2").json()["id"] != first.json()["id"]


def test_graphs_and_schedules_take_keys_too(api):
    first = post(api, "/api/graphs/", greeting(), "g-1")
    assert post(api, "/api/graphs/", greeting(), "g-1").json()["id"] == first.json()["id"]
    assert Graph.objects.count() == 1
    body = {"graph_id": first.json()["id"], "cron": "0 * * * *"}
    made = post(api, "/api/schedules/", body, "s-1")
    assert made.status_code == 201
    assert post(api, "/api/schedules/", body, "s-1").json()["id"] == made.json()["id"]
    assert Schedule.objects.count() == 1


def test_keys_belong_to_their_user(api, other_api):
    graph = create_graph(api, greeting())
    mine = post(api, "/api/graphs/", greeting(), "same-key")
    theirs = post(other_api, "/api/graphs/", greeting(), "same-key")
    assert theirs.status_code == 201 and theirs.json()["id"] != mine.json()["id"]
    assert graph["id"] not in (mine.json()["id"], theirs.json()["id"])


def test_a_failed_request_leaves_its_key_free(api):
    broken = {"name": "Broken", "nodes": [{"id": "x", "block": "no_such_block"}]}
    assert post(api, "/api/graphs/", broken, "k").status_code == 400
    assert post(api, "/api/graphs/", greeting(), "k").status_code == 201


def test_a_key_is_kept_for_the_ttl_then_forgotten(api):
    first = post(api, "/api/graphs/", greeting(), "old-key").json()
    IdempotentRequest.objects.update(created_at=timezone.now() - timedelta(hours=25))
    assert post(api, "/api/graphs/", greeting(), "old-key").json()["id"] != first["id"]


@pytest.mark.parametrize("key", ["", "with space", "x" * 256, "caf\u00e9"])
def test_malformed_keys_are_400(api, key):
    response = api.post("/api/graphs/", greeting(), format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 400 and not Graph.objects.exists()


@pytest.mark.integration
def test_concurrent_requests_with_one_key_create_one_run(user, asgi_server, transactional_db):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(user)
    graph = create_graph(api, greeting())
    key = token_issue(user=user)[0]
    answers, barrier = [], threading.Barrier(8)

    def execute():
        request = urllib.request.Request(
            f"http://{asgi_server}/api/graphs/{graph['id']}/execute/",
            data=json.dumps({"inputs": {}}).encode(),
            headers={
                "Authorization": f"Token {key}",
                "Content-Type": "application/json",
                "Idempotency-Key": "together",
            },
            method="POST",
        )
        barrier.wait()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answers.append((response.status, json.loads(response.read())["id"]))
        except urllib.error.HTTPError as exc:
            answers.append((exc.code, None))

    threads = [threading.Thread(target=execute) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {status for status, _ in answers} == {201}, answers
    assert len({run for _, run in answers}) == 1
    assert GraphExecution.objects.filter(graph_id=graph["id"]).count() == 1
    # The run goes on in the session's worker: let it end before the tables are emptied
    # (a run still writing while the test database is flushed deadlocks the flush).
    assert wait_for_run(api, answers[0][1])["status"] == "COMPLETED"
