"""Resident memory of process groups (the bench's worker and ASGI server), from /proc."""

from __future__ import annotations

import threading
from pathlib import Path


class MemorySampler:
    """Resident memory (VmRSS) of the worker's and the ASGI server's process groups, read
    from /proc: at each phase's start and end, and its peak during the phase."""

    def __init__(self, **groups: int):
        self.groups = dict(groups)  # name -> process group id
        self.phase = "start"
        self.phases: dict[str, dict[str, dict[str, float]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def begin(self, phase: str) -> None:
        with self._lock:
            self.end()
            self.phase = phase
            self._sample("at_start_mib")

    def end(self) -> None:
        if self.phase in self.phases:
            self._sample("at_end_mib")

    def watch(self, name: str, group_id: int | None) -> None:
        with self._lock:
            if group_id is None:
                self._sample("at_end_mib")
                self.groups.pop(name, None)
            else:
                self.groups[name] = group_id

    def _sample(self, key: str) -> None:
        for name, group_id in self.groups.items():
            sizes = _group_rss_mib(group_id)
            if not sizes:
                continue
            row = self.phases.setdefault(self.phase, {}).setdefault(
                name, {"at_start_mib": 0, "peak_mib": 0, "at_end_mib": 0, "largest_mib": 0}
            )
            total = round(sum(sizes))
            if key != "peak_mib":
                row[key] = total
            row["peak_mib"] = max(row["peak_mib"], total)
            row["largest_mib"] = max(row["largest_mib"], round(max(sizes)))

    def _run(self):
        while not self._stop.wait(0.25):
            with self._lock:
                self._sample("peak_mib")

    def stop(self):
        with self._lock:
            self.end()
        self._stop.set()
        self._thread.join()


def _group_rss_mib(group_id: int) -> list[float]:
    sizes = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[2]) != group_id:  # field 5: process group
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(int(line.split()[1]) / 1024)
        except (OSError, ValueError, IndexError):
            continue
    return sizes
