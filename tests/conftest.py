"""Fixtures: users and API clients, and a real Celery worker for integration tests.

The worker is a separate process (`celery worker`, prefork) consuming the test queues on the
real RabbitMQ, writing to the test database on the real PostgreSQL, keeping chord counters in
the real Redis. Integration tests use transactional tests so the worker sees committed rows.
"""

import contextlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

ROOT = Path(__file__).resolve().parent.parent
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}


@pytest.fixture
def user(db):
    return get_user_model().objects.create_user(
        f"user-{uuid.uuid4().hex[:8]}", password="pw-123456"
    )


@pytest.fixture
def other_user(db):
    return get_user_model().objects.create_user(
        f"other-{uuid.uuid4().hex[:8]}", password="pw-123456"
    )


@pytest.fixture
def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def other_api(other_user):
    client = APIClient()
    client.force_authenticate(other_user)
    return client


@pytest.fixture
def staff_api(db):
    staff = get_user_model().objects.create_user("staffer", password="pw-123456", is_staff=True)
    client = APIClient()
    client.force_authenticate(staff)
    return client


@pytest.fixture(scope="session", autouse=True)
def _no_sessions_left_on_the_test_database(django_db_setup, django_db_blocker):
    """Before pytest-django drops the test database, end any session still on it (a
    worker's pool child or the ASGI server that has not quite exited)."""
    yield
    from django.db import connection

    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def child_database_url() -> str:
    """The test database's URL, for the processes tests start (workers, server, beat)."""
    from django.db import connection

    db = connection.settings_dict
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker):
    """One real worker for the whole session, pointed at the test database."""

    from common.worker_process import start_worker, stop_worker
    from config.celery import app

    env = {
        **os.environ,
        "DATABASE_URL": child_database_url(),
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    with django_db_blocker.unblock():
        app.control.purge()
    # At INFO, as `make run` runs it: tests read this log for what must never be in it.
    proc = start_worker("test", ROOT / ".local" / "test-worker.log", env, log_level="info")
    yield proc
    stop_worker(proc)


def start_asgi(env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen, str]:
    """uvicorn serving config.asgi on a free loopback port, answering /health: (process,
    host:port)."""
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "config.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--lifespan",
                "off",
                "--timeout-graceful-shutdown",
                "3",
                "--log-level",
                "info",  # access lines too: tests read them for what must never be there
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            return proc, f"127.0.0.1:{port}"
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "ASGI server did not start"
            time.sleep(0.2)


@pytest.fixture(scope="session")
def asgi_server(celery_worker_process):
    """The ASGI application (HTTP + WebSocket) served by uvicorn, on the test database."""
    from common.worker_process import stop_worker

    env = {
        **os.environ,
        "DATABASE_URL": child_database_url(),
        "DATABASE_POOL": "1",  # as scripts/run.sh runs it
        "API_BODY_READ_SECONDS": "2",  # tests/test_hardening.py waits for it
    }
    proc, host = start_asgi(env, ROOT / ".local" / "test-asgi.log")
    yield host
    stop_worker(proc)  # stops any process group, not only workers


@pytest.fixture
def worker(celery_worker_process, transactional_db):
    """Use in integration tests: a live worker and committed transactions. Runs still going
    at the end are given a moment, then cancelled, so the worker is idle when the test's
    tables are emptied (a TRUNCATE racing the worker's transactions would deadlock)."""
    yield celery_worker_process
    from executions.control import ConflictingState, execution_cancel
    from executions.models import GraphExecution

    active = GraphExecution.objects.filter(status__in=["QUEUED", "RUNNING", "PAUSED", "REVIEW"])
    deadline = time.monotonic() + 5
    while active.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    for run_id in active.values_list("pk", flat=True):
        with contextlib.suppress(ConflictingState):  # it ended meanwhile
            execution_cancel(run_id)
    time.sleep(0.3)


def wait_for_run(api, execution_id, timeout=60.0):
    """Poll the API until the run ends; return its record."""
    deadline = time.monotonic() + timeout
    while True:
        record = api.get(f"/api/executions/{execution_id}/").json()
        if record["status"] in TERMINAL:
            return record
        if time.monotonic() > deadline:
            raise AssertionError(f"run did not end within {timeout}s: {record['status']}")
        time.sleep(0.05)


def create_graph(api, document):
    response = api.post("/api/graphs/", document, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def run_graph(api, document, inputs=None, timeout=60.0):
    graph = create_graph(api, document)
    response = api.post(
        f"/api/graphs/{graph['id']}/execute/", {"inputs": inputs or {}}, format="json"
    )
    assert response.status_code == 201, response.json()
    return wait_for_run(api, response.json()["id"], timeout)


def nodes_of(record, node_id):
    return [ne for ne in record["node_executions"] if ne["node_id"] == node_id]


def all_nodes(api, record):
    """Every node execution of a run: the record's, then each page after it."""
    nodes, url = list(record["node_executions"]), record.get("node_executions_next")
    while url:
        page = api.get(url).json()
        nodes += page["results"]
        url = page["next"]
    return nodes


@pytest.fixture
def recorder():
    """recorder() starts a local HTTP server that records what reaches it (recording.py):
    (base URL, list of requests)."""
    from .recording import Recorders

    servers = Recorders()
    yield servers.start
    servers.close()
