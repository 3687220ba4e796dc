"""Start a real Celery worker in a child process and wait until it answers (tests, bench)."""

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from celery import current_app as app  # the project's app, loaded with Django (config/)

ROOT = Path(__file__).resolve().parent.parent


def start_worker(
    prefix: str,
    log_path: Path,
    env: dict[str, str],
    *extra_args: str,
    concurrency: int = 2,
    log_level: str = "warning",
) -> subprocess.Popen:
    """A prefork worker on this app's queues, answering pings within 60 s, or RuntimeError."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}@{os.uname().nodename}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-c",
                str(concurrency),
                "-n",
                name,
                "--without-mingle",
                "--without-gossip",
                "-l",
                log_level,
                *extra_args,
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: stopped with its pool children
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker {name} exited; see {log_path}")
        if app.control.ping(destination=[name], timeout=0.5):
            return proc
    proc.terminate()
    raise RuntimeError(f"worker {name} did not answer within 60 s; see {log_path}")


def stop_worker(proc: subprocess.Popen) -> None:
    """Stop the process and every process of its group (pool children included)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # children that outlived their parent
