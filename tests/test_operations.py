"""Operations: metrics, throttling, production settings, readiness, the per-user run cap,
structured logs, the admin's run actions, and the Docker deployment's structure."""

import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from datetime import timedelta
from importlib import import_module

import pytest
import yaml
from django.core.management import get_commands
from django.test import override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from common.logs import ContextFilter, log_context
from executions.finishing import execution_finish
from executions.models import GraphExecution, OutboxMessage
from executions.recovery import watchdog
from executions.runs import execution_create, execution_start, start_waiting_runs

from .conftest import ROOT, create_graph, run_graph
from .documents import greeting, link, node

# --- metrics ----------------------------------------------------------------------------------


def scrape(client, **extra) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", **extra)
    assert response.status_code == 200, response.content
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def paid_chain():
    return {
        "name": "Paid",
        "nodes": [
            node("start", "input", name="x", value="v"),
            node("nap", "sleep", seconds=0),
            node("out", "output", name="done"),
        ],
        "links": [link("start", "result", "nap", "value"), link("nap", "output", "out", "value")],
    }


@pytest.mark.integration
def test_metrics_move_when_runs_happen(api, client, worker):
    before = scrape(client)
    record = run_graph(api, paid_chain())
    assert record["status"] == "COMPLETED"
    stale = GraphExecution.objects.create(
        graph_id=record["graph_id"],
        graph_version_id=GraphExecution.objects.get(pk=record["id"]).graph_version_id,
        user_id=GraphExecution.objects.get(pk=record["id"]).user_id,
        status="QUEUED",
    )
    GraphExecution.objects.filter(pk=stale.pk).update(
        created_at=timezone.now() - timedelta(hours=1)
    )
    assert watchdog()["start"] >= 1  # publishes its start again: a recovery
    time.sleep(0.5)  # the worker's counts reach its metrics files as it commits
    after = scrape(client)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("agentgraph_executions_started_total") >= 1
    assert moved("agentgraph_executions_finished_total", status="COMPLETED") >= 1
    assert moved("agentgraph_node_executions_total", block="sleep", status="COMPLETED") >= 1
    assert moved("agentgraph_node_run_seconds_count", block="sleep") >= 1
    assert moved("agentgraph_node_queue_wait_seconds_count", block="sleep") >= 1
    assert moved("agentgraph_credits_charged_total") >= 1
    assert moved("agentgraph_watchdog_recoveries_total", kind="start") >= 1
    assert (
        moved(
            "agentgraph_http_request_duration_seconds_count",
            method="POST",
            route="api/graphs/<uuid:graph_id>/execute/",
            status="201",
        )
        >= 1
    )
    assert ("agentgraph_active_executions", (("status", "RUNNING"),)) in after
    depth_series = {labels for name, labels in after if name == "agentgraph_queue_depth"}
    assert (("queue", "test.nodes"),) in depth_series and (
        ("queue", "test.engine"),
    ) in depth_series


def test_metrics_are_protected(client, settings, db):
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403
    settings.METRICS_TOKEN = "scrape-token"
    assert client.get("/metrics").status_code == 403  # a token, once set, is required
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    ok = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token", REMOTE_ADDR="203.0.113.9")
    assert ok.status_code == 200 and b"agentgraph_executions_started_total" in ok.content


# --- throttling, limits -----------------------------------------------------------------------


def test_throttling_answers_429_with_retry_after(api, client, user):
    with override_settings(API_THROTTLE_USER="3/minute"):
        codes = [api.get("/api/graphs/").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        refused = api.get("/api/graphs/")
        assert refused.status_code == 429 and 0 < int(refused["Retry-After"]) <= 60
    with override_settings(API_THROTTLE_ANON="2/minute"):
        body = {"username": user.username, "password": "wrong"}
        codes = [client.post("/api/auth/token/", body).status_code for _ in range(3)]
        assert codes[-1] == 429


def test_oversized_inputs_are_refused(api, settings):
    graph = create_graph(api, greeting())
    settings.ENGINE_MAX_INPUT_BYTES = 100
    response = api.post(
        f"/api/graphs/{graph['id']}/execute/", {"inputs": {"who": "x" * 200}}, format="json"
    )
    assert response.status_code == 400 and "limit is 100" in response.json()["detail"]
    assert not GraphExecution.objects.exists()


def test_runs_past_the_per_user_cap_wait_queued(user, settings, django_capture_on_commit_callbacks):
    from graphs.services import graph_create

    settings.ENGINE_MAX_RUNNING_PER_USER = 1
    graph = graph_create(owner=user, document=greeting()).graph
    with django_capture_on_commit_callbacks():  # the node messages are not sent here
        first = execution_create(user=user, graph=graph, inputs={})  # started at once
        second = execution_create(user=user, graph=graph, inputs={})
    assert execution_start(second.pk) == "no slot"
    statuses = dict(GraphExecution.objects.values_list("pk", "status"))
    assert statuses == {first.pk: "RUNNING", second.pk: "QUEUED"}
    # Waiting for a slot is not a stall: the watchdog leaves it alone.
    GraphExecution.objects.filter(pk=second.pk).update(
        created_at=timezone.now() - timedelta(hours=1)
    )
    assert watchdog()["start"] == 0

    with django_capture_on_commit_callbacks():  # not sent: the outbox keeps it
        execution_finish(first.pk, "CANCELLED", stop_running=True)
    # One start_waiting message, written with the run's end.
    assert list(OutboxMessage.objects.filter(kind="start_waiting").values_list("body")) == [
        ({"user": user.pk},)
    ]
    assert start_waiting_runs(user.pk) == 1  # what the published message's task does
    assert GraphExecution.objects.get(pk=second.pk).status == "RUNNING"
    assert start_waiting_runs(user.pk) == 0


def test_waking_runs_fills_every_free_slot_however_often_it_is_woken(user, settings):
    """Two runs ending at once both wake the waiting runs: each start takes the user's lock
    and the next waiting run, so the free slots fill and the cap holds (before, both
    wake-ups published the same oldest run, and a slot stayed empty until the watchdog)."""
    from graphs.services import graph_create

    settings.ENGINE_MAX_RUNNING_PER_USER = 2
    graph = graph_create(owner=user, document=greeting()).graph
    runs = [execution_create(user=user, graph=graph, inputs={}) for _ in range(5)]
    assert start_waiting_runs(user.pk) == 0  # the first two started as they were created
    running = list(GraphExecution.objects.filter(status="RUNNING").values_list("pk", flat=True))
    assert sorted(running) == sorted(r.pk for r in runs[:2])  # the oldest first
    for pk in running:
        execution_finish(pk, "CANCELLED", stop_running=True)
    assert start_waiting_runs(user.pk) == 2
    assert start_waiting_runs(user.pk) == 0
    statuses = dict(GraphExecution.objects.values_list("pk", "status"))
    assert [statuses[r.pk] for r in runs] == [
        "CANCELLED", "CANCELLED", "RUNNING", "RUNNING", "QUEUED"
    ]  # fmt: skip


# --- production settings ----------------------------------------------------------------------

GOOD_PRODUCTION = {
    "DJANGO_ENV": "production",
    "DJANGO_SECRET_KEY": "k" * 50,
    "DJANGO_DEBUG": "false",
    "DJANGO_ALLOWED_HOSTS": "agents.example.com",
    "ADMIN_PASSWORD": "a-long-admin-password",
    "FLOWER_BASIC_AUTH": "ops:a-long-flower-password",
    "CREDENTIALS_ENCRYPTION_KEYS": "Q2hhbmdlTWVDaGFuZ2VNZUNoYW5nZU1lQ2hhbmdlTWU=",
    "OUTBOUND_ALLOW_LOOPBACK": "false",  # the test environment allows it
}


def settings_start(**overrides):
    env = {**os.environ, **GOOD_PRODUCTION, **overrides}
    env = {k: v for k, v in env.items() if v is not None}
    code = "import django; django.setup(); from django.conf import settings; "
    code += "print(settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE)"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )


@pytest.mark.parametrize(
    ("override", "complaint"),
    [
        ({"DJANGO_DEBUG": "true"}, "DJANGO_DEBUG must be off"),
        ({"DJANGO_SECRET_KEY": None}, "DJANGO_SECRET_KEY"),
        ({"ADMIN_PASSWORD": None}, "ADMIN_PASSWORD"),
        ({"ADMIN_PASSWORD": "admin"}, "ADMIN_PASSWORD"),
        ({"FLOWER_BASIC_AUTH": "admin:admin"}, "FLOWER_BASIC_AUTH"),
        ({"FLOWER_BASIC_AUTH": "no-password"}, "FLOWER_BASIC_AUTH"),
        ({"CREDENTIALS_ENCRYPTION_KEYS": None}, "CREDENTIALS_ENCRYPTION_KEYS"),
        ({"CREDENTIALS_ENCRYPTION_KEYS": "not-a-key"}, "not a Fernet key"),
        ({"DJANGO_ALLOWED_HOSTS": "*"}, "DJANGO_ALLOWED_HOSTS"),
        ({"OUTBOUND_ALLOW_LOOPBACK": "true"}, "OUTBOUND_ALLOW_LOOPBACK must be off"),
    ],
)
def test_production_refuses_unsafe_settings(override, complaint):
    result = settings_start(**override)
    assert result.returncode != 0 and complaint in result.stderr, result.stderr[-500:]


def test_production_starts_with_safe_settings_and_secure_cookies():
    result = settings_start()
    assert result.returncode == 0, result.stderr[-800:]
    assert result.stdout.split() == ["True", "True"]


# --- readiness --------------------------------------------------------------------------------


def test_ready_fails_when_a_service_is_stopped(client, settings, tmp_path, db, monkeypatch):
    """A real Redis of its own, then stopped; the broker and database pointed at nothing."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), "--save", "",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 10
        while (ready := client.get("/ready")).status_code != 200:
            assert time.monotonic() < deadline, ready.json()
            time.sleep(0.1)
        server.terminate()
        server.wait(timeout=10)
        down = client.get("/ready")
        assert down.status_code == 503
        assert down.json()["checks"]["redis"] == "unreachable"  # the reason is logged, not shown
        assert down.json()["checks"]["database"] == "ok"
    finally:
        server.kill()
    from celery import Celery

    from config import health

    monkeypatch.setattr(
        health, "app", Celery(broker="amqp://guest:guest@127.0.0.1:1//", set_as_current=False)
    )
    assert client.get("/ready").json()["checks"]["rabbitmq"].startswith("unreachable")


# --- logs -------------------------------------------------------------------------------------


def test_log_lines_carry_the_run_and_node_execution(caplog):
    record = logging.LogRecord("executions", logging.INFO, __file__, 1, "claimed", None, None)
    with log_context("run-1", 42):
        ContextFilter().filter(record)
    assert (record.execution_id, record.node_execution_id) == ("run-1", 42)
    assert record.context == " [run=run-1 node_execution=42]"
    outside = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    ContextFilter().filter(outside)
    assert outside.execution_id is None and outside.context == ""


def test_production_logs_are_json_with_the_ids():
    from pythonjsonlogger.json import JsonFormatter

    from config.settings import LOGGING

    spec = dict(LOGGING["formatters"]["json"])
    spec.pop("()")
    formatter = JsonFormatter(**spec)
    record = logging.LogRecord("executions", logging.WARNING, __file__, 1, "slow %s", ("x",), None)
    with log_context("run-7", 9):
        ContextFilter().filter(record)
    line = json.loads(formatter.format(record))
    assert line["message"] == "slow x" and line["level"] == "WARNING"
    assert line["execution_id"] == "run-7" and line["node_execution_id"] == 9


@pytest.mark.integration
def test_worker_log_lines_name_the_node_execution(api, worker):
    document = {
        "name": "Failing",
        "nodes": [node("bad", "http_request", url="http://10.0.0.1/")],
        "links": [],
    }
    record = run_graph(api, document)
    ne_id = record["node_executions"][0]["id"]
    text = (ROOT / ".local" / "test-worker.log").read_text(errors="replace")
    assert re.search(rf"\[run={record['id']} node_execution={ne_id}\]", text), text[-2000:]


# --- admin ------------------------------------------------------------------------------------


@pytest.fixture
def staff_client(client, db):
    from django.contrib.auth import get_user_model

    boss = get_user_model().objects.create_superuser("boss", "b@example.com", "pw-123456")
    client.force_login(boss)
    return client


def test_admin_filters_searches_and_reruns(staff_client, user, django_capture_on_commit_callbacks):
    from graphs.services import graph_create

    graph = graph_create(owner=user, document=greeting()).graph
    with django_capture_on_commit_callbacks():
        run = execution_create(user=user, graph=graph, inputs={"who": "admin"})
    base = "/admin/executions/graphexecution/"
    for query in (
        "?status__exact=QUEUED",
        f"?graph__id__exact={graph.pk}",
        f"?user__id__exact={user.pk}",
        f"?q={run.pk}",
        "?q=nobody-by-that-name",
        f"?created_at__year={run.created_at.year}",
    ):
        assert staff_client.get(base + query).status_code == 200, query
    assert str(run.pk) in staff_client.get(f"{base}?q={run.pk}").content.decode()
    page = staff_client.get(f"{base}{run.pk}/change/").content.decode()
    assert "<pre" in page and "&quot;who&quot;: &quot;admin&quot;" in page

    selected = {"action": "rerun", "_selected_action": [str(run.pk)]}
    confirm = staff_client.post(base, selected).content.decode()  # the preview first
    assert 'class="from-start"' in confirm and 'class="from-stopped"' not in confirm
    assert not GraphExecution.objects.exclude(pk=run.pk).exists()
    with django_capture_on_commit_callbacks():
        response = staff_client.post(
            base, {**selected, "confirmed": "yes", "from": "stopped"}, follow=True
        )
    assert response.status_code == 200 and "re-run as" in response.content.decode()
    rerun = GraphExecution.objects.exclude(pk=run.pk).get()
    assert rerun.inputs == {"who": "admin"} and rerun.graph_version_id == run.graph_version_id


def test_non_staff_reach_no_admin_page(client, user):
    client.force_login(user)
    for path in (
        "/admin/",
        "/admin/executions/graphexecution/",
        "/admin/credits/credittransaction/",
        "/admin/credentials/credential/",
    ):
        response = client.get(path)
        assert response.status_code == 302 and "/login/" in response["Location"], path


# --- Docker -----------------------------------------------------------------------------------

COMPOSE = yaml.safe_load((ROOT / "docker" / "compose.yml").read_text())
ROLES = {"postgres", "redis", "rabbitmq", "web", "worker", "beat", "flower"}


def test_compose_has_every_role_with_a_healthcheck_and_restart_policy():
    services = COMPOSE["services"]
    assert services.keys() >= ROLES
    for name in ROLES:
        assert "healthcheck" in services[name], name
        assert services[name].get("restart") == "unless-stopped", name
    assert "management" in services["rabbitmq"]["image"]


def test_compose_is_configured_only_through_the_environment():
    text = (ROOT / "docker" / "compose.yml").read_text()
    used = set(re.findall(r"\$\{(\w+)\}", text))
    example = (ROOT / "docker" / ".env.example").read_text()
    defined = set(re.findall(r"^(\w+)=", example, flags=re.M))
    assert used <= defined, used - defined
    assert not re.search(r"(PASSWORD|SECRET_KEY|PASS):\s*[^$\s{]", text)  # no literal secrets
    for required in ("DJANGO_SECRET_KEY", "CREDENTIALS_ENCRYPTION_KEYS", "ADMIN_PASSWORD"):
        assert required in defined


def test_every_compose_command_exists_in_the_project():
    commands = get_commands()
    for name, service in COMPOSE["services"].items():
        for command in _commands_of(service):
            if command[:2] == ["python", "manage.py"]:
                assert command[2] in commands, (name, command)
            elif command[0] == "celery":
                assert command[1:3] == ["-A", "config"]
                assert import_module("config.celery").app is not None
                for arg in command:
                    if ":" in arg and "." in arg and not arg.startswith("-"):
                        module, attr = arg.split(":")
                        assert hasattr(import_module(module), attr), (name, arg)
                    if arg.startswith("--conf="):
                        assert (ROOT / arg.removeprefix("--conf=")).is_file(), (name, arg)
            elif command[0] == "uvicorn":
                module, attr = command[1].split(":")
                assert (ROOT / (module.replace(".", "/") + ".py")).is_file() and attr
            elif command[0] in ("pg_isready", "redis-cli", "rabbitmq-diagnostics", "redis-server"):
                continue  # the service images' own tools
            else:
                raise AssertionError(f"{name}: unknown command {command}")


def _commands_of(service) -> list[list[str]]:
    found = []
    if "command" in service:
        found.append(service["command"])
    test = service.get("healthcheck", {}).get("test", [])
    if test and test[0] == "CMD":
        found.append(test[1:])
    elif test and test[0] == "CMD-SHELL":
        found.append(test[1].split()[:1])
    return [c if isinstance(c, list) else c.split() for c in found]


def test_the_image_is_slim_and_runs_as_a_user():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    # The base is a build argument (make compose-test builds on a Debian base of its own);
    # the official slim image by default.
    assert re.search(r"^ARG BASE=python:3\.11-slim$", dockerfile, flags=re.M)
    assert re.findall(r"^FROM (\S+)", dockerfile, flags=re.M) == ["${BASE}"] * 2
    users = re.findall(r"^USER (\S+)", dockerfile, flags=re.M)
    assert users and users[-1] not in ("root", "0")
    # The whole project goes in (no list of apps to fall behind), less what .dockerignore
    # keeps out: local state, secrets, the virtualenv, Git.
    assert "COPY . ." in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    for kept_out in (".git", ".venv", ".local", "docker/.env", "**/__pycache__"):
        assert kept_out in ignored, kept_out


def test_every_package_is_installed_by_the_project_build():
    """The image runs what `pip install .` installs: every app must be in the package list."""
    import tomllib

    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    apps = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert apps <= {pattern.rstrip("*") for pattern in include}, apps


def test_slow_blocks_can_have_a_queue_of_their_own(settings):
    from executions.dispatch import node_queue

    settings.ENGINE_BLOCK_QUEUES = {"http_request": "io"}
    assert node_queue("http_request") == "io"
    assert node_queue("store_value") == settings.NODE_QUEUE


@pytest.mark.integration
def test_hundreds_of_concurrent_submissions_are_all_accepted(asgi_server, transactional_db):
    """The ASGI server takes database connections from a bounded pool: a burst of concurrent
    requests waits for connections instead of exhausting PostgreSQL (which gave 500s)."""
    import asyncio

    import httpx2
    from django.contrib.auth import get_user_model
    from django.db import connection

    from accounts.services import token_issue
    from graphs.services import graph_create

    user = get_user_model().objects.create_user("burst", password="pw-123456")
    graph = graph_create(owner=user, document=greeting()).graph
    headers = {"Authorization": f"Token {token_issue(user=user)[0]}"}

    async def burst():
        limits = httpx2.Limits(max_connections=300)
        async with httpx2.AsyncClient(
            base_url=f"http://{asgi_server}", headers=headers, timeout=120, limits=limits
        ) as client:
            return await asyncio.gather(
                *(client.post(f"/api/graphs/{graph.pk}/execute/", json={}) for _ in range(300))
            )

    codes = sorted({r.status_code for r in asyncio.run(burst())})
    assert codes == [201]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        assert cursor.fetchone()[0] < 60  # the pool's 20, the worker's, this test's
    deadline = time.monotonic() + 120
    while GraphExecution.objects.exclude(status="COMPLETED").exists():
        assert time.monotonic() < deadline, "the burst's runs did not all complete"
        time.sleep(0.2)
    assert GraphExecution.objects.filter(status="COMPLETED").count() == 300
