"""Which workers of one server serve and which drain, as marker files in a folder of its own.

A draining worker (:mod:`serving.server.drain`) closes the shared listening socket only when
every live sibling drains too, i.e. the whole server stops; a worker restarted alone leaves it
open. Linux only (``/proc``): elsewhere there are no markers and every drain closes the door.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger("delivery_eta.shutdown")

_LINUX = sys.platform.startswith("linux")


def _proc_stat(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` from its 3rd field on (state, ppid, ...); None if there is no such pid."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # the command name, in parentheses, may hold spaces


def is_live_child(pid: int, parent: int) -> bool:
    """``pid`` runs (not a zombie awaiting its reaper) and is a child of ``parent``."""
    fields = _proc_stat(pid)
    return fields is not None and fields[0] not in ("Z", "X", "x") and int(fields[1]) == parent


_MARKERS_PREFIX = "delivery-eta-workers-"


class ServerWorkers:
    """The workers of one server as their marker files tell: which serve, which drain.

    Each worker touches ``serving.<pid>`` once it listens and ``draining.<pid>`` when its drain
    starts, in ``directory`` (private to the server). Only markers of live siblings count
    (``is_sibling``), so a worker that crashed or exited needs no clean-up, and a pid reused by
    the next worker clears the stale draining marker when it registers.
    """

    def __init__(self, directory: Path, pid: int, is_sibling: Callable[[int], bool]) -> None:
        self.directory = directory
        self.pid = pid
        self.is_sibling = is_sibling

    @classmethod
    def of_this_server(cls) -> ServerWorkers | None:
        """The markers of the server this worker belongs to (Linux, :func:`markers_folder`); None,
        with a warning, when they cannot be kept. Folders of servers no longer running go."""
        arbiter = os.getppid()
        directory = markers_folder(arbiter)
        if directory is None:
            return None
        root, uid = directory.parent, os.getuid()
        try:
            directory.mkdir(mode=0o700, exist_ok=True)
            info = directory.lstat()
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid:  # lstat: no symlink
                raise PermissionError(f"{directory} is not a directory of uid {uid}")
        except OSError as exc:
            logger.warning("workers cannot tell a lone restart from a server stop: %s", exc)
            return None
        _remove_folders_of_stopped_servers(root, uid)
        return cls(directory, os.getpid(), lambda pid: is_live_child(pid, arbiter))

    def register(self, draining: bool = False) -> None:
        """Count this worker as one of the server's (listening) workers."""
        self._touch("serving")
        if not draining:
            (self.directory / f"draining.{self.pid}").unlink(missing_ok=True)

    def mark_draining(self) -> None:
        """Count this worker as draining."""
        self._touch("draining")

    def draining_siblings(self) -> set[int]:
        """Pids of the other live workers that are draining."""
        return {pid for pid in self._pids("draining") if pid != self.pid and self.is_sibling(pid)}

    def all_draining(self) -> bool:
        """Every other live worker of the server drains too (asked by a draining worker): the
        whole server is stopping."""
        others = {pid for pid in self._pids("serving") if pid != self.pid and self.is_sibling(pid)}
        return others <= self._pids("draining")

    def _touch(self, kind: str) -> None:
        (self.directory / f"{kind}.{self.pid}").touch()

    def _pids(self, kind: str) -> set[int]:
        pids = set()
        for marker in self.directory.glob(f"{kind}.*"):
            with contextlib.suppress(ValueError):
                pids.add(int(marker.suffix[1:]))
        return pids


def markers_folder(arbiter: int) -> Path | None:
    """Where the workers of the server whose arbiter (``bentoml serve`` process) is ``arbiter``
    keep their markers; None if that process is gone or this is not Linux."""
    arbiter_stat = _proc_stat(arbiter) if _LINUX else None
    if arbiter_stat is None:
        return None
    started = arbiter_stat[19]  # starttime: pids get reused, a (pid, start) pair does not
    return Path(tempfile.gettempdir()) / f"{_MARKERS_PREFIX}{os.getuid()}-{arbiter}-{started}"


def _remove_folders_of_stopped_servers(root: Path, uid: int) -> None:
    for folder in root.glob(f"{_MARKERS_PREFIX}{uid}-*-*"):
        arbiter, started = folder.name.rsplit("-", 2)[-2:]
        if not arbiter.isdigit():
            continue
        arbiter_stat = _proc_stat(int(arbiter))
        if arbiter_stat is None or arbiter_stat[19] != started:
            shutil.rmtree(folder, ignore_errors=True)
