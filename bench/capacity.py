"""The capacity model's figures, measured: what one node and one run cost PostgreSQL and
Redis, read off their own counters around a run (nothing else runs meanwhile).

PostgreSQL: committed transactions and rows written (pg_stat_database). Redis: commands
executed (INFO commandstats; the commands our Lua scripts call are counted one by one, and
the script call itself once more). Broker messages are counted by the engine's own rule (one
per node execution queued, one per fan-in join, one per run start that waited), not read
from RabbitMQ, which keeps no cumulative counter without its management plugin.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.db import connection

from executions import events

STATS_FLUSH_SECONDS = 11


def _postgres() -> dict[str, int]:
    # The statistics collector's view lags by up to its flush interval: take a fresh one.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted "
            "FROM pg_stat_database WHERE datname = current_database()"
        )
        commits, inserted, updated, deleted = cursor.fetchone()
    return {"transactions": commits, "rows_written": inserted + updated + deleted}


def _redis_commands() -> int:
    stats: Any = events.client().info("commandstats")
    return sum(int(v["calls"]) for v in stats.values())


def measure(label: str, run: Callable[[], Any], nodes: int, runs: int) -> dict[str, Any]:
    """Counters before and after `run()`, per node and per run."""
    # A busy backend flushes its statistics at most once a second, an idle one (a worker's
    # persistent connection after the run) once it has been idle for 10 s: wait that out.
    time.sleep(STATS_FLUSH_SECONDS)
    pg_before, redis_before = _postgres(), _redis_commands()
    run()
    time.sleep(STATS_FLUSH_SECONDS)
    pg_after, redis_after = _postgres(), _redis_commands()
    totals = {
        "transactions": pg_after["transactions"] - pg_before["transactions"],
        "rows_written": pg_after["rows_written"] - pg_before["rows_written"],
        "redis_commands": redis_after - redis_before - 2,  # our own two INFO calls
    }
    return {
        "scenario": label,
        "nodes": nodes,
        "runs": runs,
        "per_node": {k: round(v / nodes, 2) for k, v in totals.items()},
        "per_run": {k: round(v / runs, 2) for k, v in totals.items()},
    }
