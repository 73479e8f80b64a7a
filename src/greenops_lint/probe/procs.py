"""Processes: run a command in its own session, stop it and all its children.

Every variant runs in a new session (so a new process group). At the timeout,
when the command ends with children left running, or when the probe itself is
stopped (SIGTERM, Ctrl-C), the probe stops the whole tree: the processes of
the session and of the group, every descendant found through /proc (which
catches children that moved to a group of their own), and the descendants
that escaped both, with SIGTERM first and SIGKILL after a grace period, so
that a child that ignores SIGTERM is stopped too.

A double-forked daemon (fork, setsid, fork, the middle process exits) leaves
the session and loses its parent chain. Two things still find it: while a
command runs, the probe is a child subreaper (Linux `PR_SET_CHILD_SUBREAPER`),
so orphans of the command are re-parented to the probe rather than to init,
and every process of the command carries a marker in its environment
(`GREENOPS_PROBE_RUN`, read from /proc/PID/environ) unless it cleared it.
`run_command` assumes that no other thread of the process starts processes
while it runs (the probe runs one command at a time).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Optional, Sequence

GRACE_S = 1.0
MARKER = "GREENOPS_PROBE_RUN"
_PR_SET_CHILD_SUBREAPER, _PR_GET_CHILD_SUBREAPER = 36, 37


def _prctl():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl
    except (OSError, AttributeError):  # pragma: no cover - no libc prctl
        return None


def set_subreaper(on: bool) -> Optional[bool]:
    """Make this process a child subreaper (or not); the previous setting, or
    None where the system has no subreapers."""
    prctl = _prctl()
    if prctl is None:
        return None
    previous = ctypes.c_int(0)
    if prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(previous), 0, 0, 0) != 0:
        return None
    if prctl(_PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0) != 0:
        return None
    return bool(previous.value)


def _marked(pid: int, marker: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            return marker in handle.read().split(b"\0")
    except OSError:
        return False


def _proc_stat(pid: int) -> Optional[tuple[int, int, int, str]]:
    """(ppid, pgid, sid, state) of a process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[2]), int(fields[3]), fields[0]


def _all_processes() -> dict[int, tuple[int, int, int, str]]:
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _proc_stat(int(entry))
            if stat is not None:
                table[int(entry)] = stat
    return table


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting to be reaped)."""
    stat = _proc_stat(pid)
    return stat is not None and stat[3] not in ("Z", "X")


class Scope:
    """What else belongs to a command besides `root`'s tree: processes carrying
    its environment marker, and orphans re-parented to this (subreaper)
    process that were not its children before the command started."""

    def __init__(self, marker: Optional[str] = None, known_children: Optional[set[int]] = None) -> None:
        self.marker = marker.encode() if marker else None
        self.known_children = known_children  # None: do not adopt orphans

    def extra(self, table: dict, protected: set[int]) -> set[int]:
        me = os.getpid()
        found = set()
        for pid, (ppid, _, _, state) in table.items():
            if pid in protected or state in ("Z", "X"):
                continue
            if self.known_children is not None and ppid == me and pid not in self.known_children:
                found.add(pid)
            elif self.marker is not None and _marked(pid, self.marker):
                found.add(pid)
        return found


def _children_of_me() -> set[int]:
    me = os.getpid()
    return {pid for pid, stat in _all_processes().items() if stat[0] == me}


def tree(root: int, scope: Optional[Scope] = None) -> set[int]:
    """The live processes of `root`'s tree: its descendants, the members of
    the session and process group it leads, and what `scope` adds."""
    table = _all_processes()
    protected = {os.getpid()}
    parent = os.getppid()
    while parent > 1:
        protected.add(parent)
        stat = table.get(parent)
        parent = stat[0] if stat else 0
    members = {root} if root in table else set()
    children: dict[int, list[int]] = {}
    for pid, (ppid, pgid, sid, _state) in table.items():
        children.setdefault(ppid, []).append(pid)
        if (sid == root or pgid == root) and pid not in protected:
            members.add(pid)
    if scope is not None:
        members |= scope.extra(table, protected)
    stack = list(members)
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in members and child not in protected:
                members.add(child)
                stack.append(child)
    return {pid for pid in members if table[pid][3] not in ("Z", "X")}


def _signal_all(pids: Sequence[int], root: int, sig: int) -> None:
    try:
        os.killpg(root, sig)
    except (ProcessLookupError, PermissionError):
        pass
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def kill_tree(root: int, grace: float = GRACE_S, scope: Optional[Scope] = None) -> int:
    """Stop `root` and its tree: SIGTERM, then SIGKILL after `grace` seconds
    for whatever is still running. Returns how many processes were stopped."""
    members = tree(root, scope)
    stopped = set(members)
    _signal_all(sorted(members), root, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        members = {p for p in members | tree(root, scope) if alive(p)}
        stopped |= members
        if not members:
            break
        _reap_adopted(stopped, root)
        time.sleep(0.02)
    members = {p for p in members | tree(root, scope) if alive(p)}
    stopped |= members
    if members:
        _signal_all(sorted(members), root, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while members and time.monotonic() < deadline:
            time.sleep(0.02)
            _reap_adopted(stopped, root)
            members = {p for p in members if alive(p)}
    _reap_adopted(stopped, root)
    return len(stopped)


def _reap_orphans(scope: Scope) -> None:
    """Orphans of the command adopted by this process that ended by
    themselves are zombies until waited for."""
    if scope.known_children is None:
        return
    me = os.getpid()
    for pid, (ppid, _, _, state) in _all_processes().items():
        if ppid == me and state == "Z" and pid not in scope.known_children:
            try:
                os.waitpid(pid, os.WNOHANG)
            except (ChildProcessError, OSError):
                pass


def _reap_adopted(pids: set[int], root: int) -> None:
    """Collect the exit status of the stopped processes that became this
    process's children (orphans adopted as subreaper), so that no zombie
    stays behind; `root` is left to its own reaper."""
    for pid in pids:
        if pid == root:
            continue
        try:
            os.waitpid(pid, os.WNOHANG)
        except (ChildProcessError, OSError):
            pass


@dataclass
class Completed:
    """One finished (or stopped) command run."""

    returncode: Optional[int]
    wall_s: float
    cpu_s: float  # user + system of the command and the children it waited for
    maxrss_bytes: int  # the largest resident set among them
    timed_out: bool = False
    stopped: int = 0  # processes stopped at the timeout
    extra: dict = field(default_factory=dict)


def run_command(
    command: str,
    cwd: str,
    timeout: float,
    env: Optional[dict] = None,
    log_path: Optional[str] = None,
    on_start=None,
) -> Completed:
    """Run `command` through /bin/sh in a new session, wait with a timeout,
    and collect its resource usage with wait4. Whatever it leaves running is
    stopped before this returns, and so is everything it started when this
    process is stopped meanwhile (SIGTERM as SystemExit, Ctrl-C)."""
    marker = uuid.uuid4().hex
    env = dict(os.environ if env is None else env, **{MARKER: marker})
    known = _children_of_me()
    previous = set_subreaper(True)
    scope = Scope(marker, known if previous is not None else None)
    try:
        return _run(command, cwd, timeout, env, log_path, on_start, scope)
    finally:
        if previous is not None and not previous:
            set_subreaper(False)


def _run(command, cwd, timeout, env, log_path, on_start, scope: Scope) -> Completed:
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", command],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        if log_path:
            log.close()
    started = time.perf_counter()
    outcome: dict = {}
    done = threading.Event()

    def reap() -> None:
        _, status, usage = os.wait4(proc.pid, 0)
        outcome["wall"] = time.perf_counter() - started
        outcome["status"] = status
        outcome["usage"] = usage
        done.set()

    reaper = threading.Thread(target=reap, daemon=True)
    reaper.start()
    try:
        if on_start is not None:
            on_start()
        timed_out = not done.wait(timeout)
    except BaseException:
        # The probe is being stopped: nothing it started may outlive it.
        kill_tree(proc.pid, grace=0.5, scope=scope)
        done.wait(5.0)
        raise
    stopped = 0
    if timed_out:
        stopped = kill_tree(proc.pid, scope=scope)
        done.wait()
    reaper.join()
    leftover = tree(proc.pid, scope)  # background children and daemons the command left running
    if leftover:
        stopped += kill_tree(proc.pid, scope=scope)
    _reap_orphans(scope)
    status, usage = outcome["status"], outcome["usage"]
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return Completed(
        returncode=proc.returncode,
        wall_s=outcome["wall"],
        cpu_s=usage.ru_utime + usage.ru_stime,
        maxrss_bytes=usage.ru_maxrss * 1024,
        timed_out=timed_out,
        stopped=stopped,
        extra={"left_running": len(leftover)} if leftover else {},
    )
