"""Process accounting from /proc: a process tree's CPU ticks (niced threads apart) and memory, the
machine's busy ticks, reaped children."""

from __future__ import annotations

import contextlib
import os
import re
import resource
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
# Helper processes that are children of a server but serve no requests: multiprocessing's
# resource tracker (uvicorn --workers starts one next to its workers).
HELPER_MARKERS = ("multiprocessing.resource_tracker", "multiprocessing.semaphore_tracker")


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


def _tree(stats: Mapping[int, tuple[int, int]], root_pid: int) -> list[int]:
    """``root_pid`` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    tree: list[int] = []
    todo = [root_pid]
    while todo:
        pid = todo.pop()
        if pid in stats:
            tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def tree_cpu_ticks(root_pid: int) -> dict[int, int]:
    """pid -> CPU ticks used so far, for ``root_pid`` and all its live descendants (workers
    included: BentoML's workers start their own sessions, so the process tree ties them)."""
    stats = _proc_stats()
    return {pid: stats[pid][1] for pid in _tree(stats, root_pid)}


def niced_thread_ticks(root_pid: int) -> int:
    """CPU ticks so far of the threads with a positive nice in ``root_pid``'s process tree (the
    service's shadow threads: serving/pipeline/shadow.py renices them, nothing else in a worker
    does); 0 when none runs niced."""
    ticks = 0
    for pid in _tree(_proc_stats(), root_pid):
        with contextlib.suppress(OSError):
            for task in os.scandir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError):
                    raw = Path(task.path, "stat").read_text()
                    fields = raw[raw.rindex(")") + 2 :].split()
                    # fields[0] is field 3 (state): utime 14, stime 15, nice 19
                    if int(fields[16]) > 0:
                        ticks += int(fields[11]) + int(fields[12])
    return ticks


def worker_pids(root_pid: int, children: Sequence[int], cmdlines: Mapping[int, str]) -> list[int]:
    """The processes of a server that handle requests: the direct children of ``root_pid``
    that are not helpers (``bentoml serve`` and ``uvicorn --workers`` fork their workers
    from the process we started), or ``root_pid`` itself if it has none (``uvicorn`` with
    one worker serves in its own process)."""
    workers = [
        pid
        for pid in children
        if not any(marker in cmdlines.get(pid, "") for marker in HELPER_MARKERS)
    ]
    return sorted(workers) or [root_pid]


def vmrss_kib(status_text: str) -> int:
    """Resident set size in KiB from the text of ``/proc/<pid>/status`` (0 if absent: a
    zombie or kernel thread has no VmRSS line)."""
    match = re.search(r"^VmRSS:\s+(\d+)\s+kB", status_text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _rss_mib(pid: int) -> float:
    return vmrss_kib(_read(f"/proc/{pid}/status")) / 1024.0


def memory_mib(root_pid: int) -> tuple[float, float]:
    """(median RSS over the server's workers, RSS of its whole process tree), in MiB.

    The total counts shared pages once per process, as every RSS sum does."""
    stats = _proc_stats()
    tree = _tree(stats, root_pid)
    direct = [pid for pid in tree if stats[pid][0] == root_pid]
    cmdlines = {pid: _read(f"/proc/{pid}/cmdline").replace("\0", " ") for pid in direct}
    workers = worker_pids(root_pid, direct, cmdlines)
    per_worker = [_rss_mib(pid) for pid in workers]
    total = sum(_rss_mib(pid) for pid in tree)
    return (statistics.median(per_worker) if per_worker else float("nan")), total


def machine_busy_ticks() -> int:
    """Busy CPU ticks of the whole machine so far (all cores; idle and iowait excluded)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(values) - values[3] - values[4]


def children_cpu_s() -> float:
    """CPU seconds of reaped children of this process (wrk, once it has exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
