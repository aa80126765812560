"""CPU accounting from /proc: a process tree's ticks, the machine's busy ticks, reaped children."""

from __future__ import annotations

import contextlib
import os
import resource
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _proc_stats() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, utime + stime in ticks) for every process we can read."""
    stats: dict[int, tuple[int, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            raw = Path(entry.path, "stat").read_text()
            fields = raw[raw.rindex(")") + 2 :].split()
            stats[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return stats


def tree_cpu_ticks(root_pid: int) -> dict[int, int]:
    """pid -> CPU ticks used so far, for ``root_pid`` and all its live descendants (workers
    included: BentoML's workers start their own sessions, so the process tree ties them)."""
    stats = _proc_stats()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    ticks: dict[int, int] = {}
    todo = [root_pid]
    while todo:
        pid = todo.pop()
        if pid in stats:
            ticks[pid] = stats[pid][1]
        todo.extend(children.get(pid, ()))
    return ticks


def machine_busy_ticks() -> int:
    """Busy CPU ticks of the whole machine so far (all cores; idle and iowait excluded)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(values) - values[3] - values[4]


def children_cpu_s() -> float:
    """CPU seconds of reaped children of this process (wrk, once it has exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
