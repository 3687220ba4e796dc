"""Scale-out across hosts, shown with two network namespaces (needs root and `ip`):

    python -m bench.scale_out [ITEMS]

Each namespace is a host with its own network stack, joined to this one by a veth pair:
  ag-host1  10.231.1.2/24   its peer here 10.231.1.1
  ag-host2  10.231.2.2/24   its peer here 10.231.2.1 (a routed hop away from 10.231.1.1)
The services of the first host (PostgreSQL, Redis, RabbitMQ, run by scripts/services.sh
on loopback) are published on 10.231.1.1 with socat. One worker runs in each namespace,
configured only by its environment to reach them at 10.231.1.1, on queues of its own.
A fan-out of ITEMS numbers (default 2,000) through a calculator (x * 2) runs on both; the
script checks the result and counts the node executions each worker ran (its `worker`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("CELERY_NODE_QUEUE", "scale.nodes")
os.environ.setdefault("CELERY_ENGINE_QUEUE", "scale.engine")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db.models import Count  # noqa: E402

from config.celery import app  # noqa: E402
from executions.models import GraphExecution, NodeExecution  # noqa: E402
from executions.runs import execution_create  # noqa: E402
from graphs.services import graph_create  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HOSTS = {"ag-host1": 1, "ag-host2": 2}
SERVICE_ADDRESS = "10.231.1.1"


def sh(*args: str) -> None:
    subprocess.run(args, check=True)


def create_hosts() -> None:
    for name, n in HOSTS.items():
        remove_host(name)
        sh("ip", "netns", "add", name)
        sh("ip", "link", "add", f"ag-veth{n}", "type", "veth", "peer", "name", f"ag-peer{n}")
        sh("ip", "link", "set", f"ag-peer{n}", "netns", name)
        sh("ip", "addr", "add", f"10.231.{n}.1/24", "dev", f"ag-veth{n}")
        sh("ip", "link", "set", f"ag-veth{n}", "up")
        inside = ("ip", "netns", "exec", name)
        sh(*inside, "ip", "addr", "add", f"10.231.{n}.2/24", "dev", f"ag-peer{n}")
        sh(*inside, "ip", "link", "set", f"ag-peer{n}", "up")
        sh(*inside, "ip", "link", "set", "lo", "up")
        sh(*inside, "ip", "route", "add", "default", "via", f"10.231.{n}.1")


def remove_host(name: str) -> None:
    n = HOSTS[name]
    subprocess.run(["ip", "netns", "del", name], stderr=subprocess.DEVNULL)
    subprocess.run(["ip", "link", "del", f"ag-veth{n}"], stderr=subprocess.DEVNULL)


def publish_services() -> list[subprocess.Popen]:
    """socat from 10.231.1.1:<port> to the service on loopback, for each service."""
    ports = {
        "postgres": settings.DATABASES["default"]["PORT"],
        "redis": _port(settings.REDIS_URL),
        "rabbitmq": _port(settings.CELERY_BROKER_URL),
    }
    return [
        subprocess.Popen(
            [
                "socat",
                f"TCP-LISTEN:{port},bind={SERVICE_ADDRESS},fork,reuseaddr",
                f"TCP:127.0.0.1:{port}",
            ],
        )
        for port in ports.values()
    ]


def _port(url: str) -> int:
    return urlsplit(url).port or 0


def _remote(url: str) -> str:
    return url.replace("127.0.0.1", SERVICE_ADDRESS).replace("localhost", SERVICE_ADDRESS)


def start_worker(host: str) -> subprocess.Popen:
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{SERVICE_ADDRESS}:"
        f"{db['PORT']}/{db['NAME']}",
        "REDIS_URL": _remote(settings.REDIS_URL),
        "CELERY_BROKER_URL": _remote(settings.CELERY_BROKER_URL),
        "CELERY_RESULT_BACKEND": _remote(settings.CELERY_RESULT_BACKEND),
        "PROMETHEUS_MULTIPROC_DIR": str(ROOT / ".local" / f"metrics-{host}"),
    }
    log = open(ROOT / ".local" / f"scale-{host}.log", "w")  # noqa: SIM115 (the child owns it)
    return subprocess.Popen(
        ["ip", "netns", "exec", host, sys.executable, "-m", "celery", "-A", "config", "worker",
         "-c", "2", "-n", f"worker@{host}", "--without-mingle", "--without-gossip",
         "-l", "warning"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def doubling_fan_out(items: int) -> dict:
    return {
        "name": f"scale-out {items}",
        "nodes": [
            {"id": "each", "block": "step_through_items",
             "input_default": {"items": list(range(items))}},
            {"id": "double", "block": "calculator",
             "input_default": {"operation": "multiply", "b": 2, "round_result": True}},
            {"id": "out", "block": "output", "input_default": {"name": "doubled"}},
        ],
        "links": [
            {"source_id": "each", "source_name": "item", "sink_id": "double", "sink_name": "a"},
            {"source_id": "double", "source_name": "result", "sink_id": "out",
             "sink_name": "value"},
        ],
    }  # fmt: skip


def wait_for_workers(names: list[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answered = {name for reply in app.control.ping(timeout=1) for name in reply}
        if set(names) <= answered:
            return
    raise SystemExit(f"workers did not answer: {set(names) - answered}")


def _run_on(user, items: int, hosts: list[str]) -> bool:
    """One doubling fan-out of `items` on the workers of `hosts`: correct, and on each?"""
    graph = graph_create(owner=user, document=doubling_fan_out(items)).graph
    started = time.perf_counter()
    run = execution_create(user=user, graph=graph, inputs={})
    deadline = time.monotonic() + 600
    while (run := GraphExecution.objects.get(pk=run.pk)).status in ("QUEUED", "RUNNING"):
        if time.monotonic() > deadline:
            raise SystemExit("the run did not finish in 600 s")
        time.sleep(0.2)
    elapsed = time.perf_counter() - started
    by_worker = dict(
        NodeExecution.objects.filter(execution=run)
        .values_list("worker")
        .annotate(n=Count("id"))
        .values_list("worker", "n")
    )
    doubled = sorted(run.outputs.get("doubled", []))
    correct = run.status == "COMPLETED" and doubled == [2 * i for i in range(items)]
    print(
        f"{len(hosts)} host(s): run {run.pk} {run.status} in {elapsed:.1f} s, "
        f"{items} items doubled, {items / elapsed:.0f} items/s"
    )
    for worker, n in sorted(by_worker.items()):
        print(f"  {worker or '(none)':20} ran {n} node executions")
    on_each = all(by_worker.get(f"worker@{host}", 0) > 0 for host in hosts)
    print(f"  result correct: {correct}; node executions on every host: {on_each}")
    return correct and on_each


def main(items: int) -> int:
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("socat"):
        print("needs root, `ip` and `socat` to create network namespaces")
        return 2
    (ROOT / ".local").mkdir(exist_ok=True)
    create_hosts()
    forwarders = publish_services()
    workers = []
    started_hosts: set[str] = set()
    try:
        app.control.purge()
        user, _ = get_user_model().objects.get_or_create(username="scale-out")
        ok = True
        # One host's worker first, then both: the same run, items per second side by side.
        for hosts in (list(HOSTS)[:1], list(HOSTS)):
            workers += [start_worker(host) for host in hosts if host not in started_hosts]
            started_hosts.update(hosts)
            wait_for_workers([f"worker@{host}" for host in hosts])
            ok = _run_on(user, items, hosts) and ok
        return 0 if ok else 1
    finally:
        for proc in workers:
            subprocess.run(["kill", "-TERM", f"-{proc.pid}"], stderr=subprocess.DEVNULL)
        for proc in workers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                subprocess.run(["kill", "-KILL", f"-{proc.pid}"], stderr=subprocess.DEVNULL)
        for proc in forwarders:
            proc.terminate()
        for name in HOSTS:
            remove_host(name)


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
