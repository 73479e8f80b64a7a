"""Processes: run a command in its own session, stop it and all its children.

Every variant runs in a new session (so a new process group). At the timeout
the probe stops the whole tree: the processes of the session and of the group,
and every descendant found through /proc (which catches children that moved
to a group of their own), with SIGTERM first and SIGKILL after a grace
period, so that a child that ignores SIGTERM is stopped too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

GRACE_S = 1.0


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


def tree(root: int) -> set[int]:
    """The live processes of `root`'s tree: its descendants, and the members of
    the session and process group it leads."""
    table = _all_processes()
    protected = {os.getpid()}
    parent = os.getppid()
    while parent > 1:
        protected.add(parent)
        stat = table.get(parent)
        parent = stat[0] if stat else 0
    members = {root} if root in table else set()
    children: dict[int, list[int]] = {}
    for pid, (ppid, pgid, sid, state) in table.items():
        children.setdefault(ppid, []).append(pid)
        if (sid == root or pgid == root) and pid not in protected:
            members.add(pid)
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


def kill_tree(root: int, grace: float = GRACE_S) -> int:
    """Stop `root` and its tree: SIGTERM, then SIGKILL after `grace` seconds
    for whatever is still running. Returns how many processes were stopped."""
    members = tree(root)
    stopped = set(members)
    _signal_all(sorted(members), root, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        members = {p for p in members | tree(root) if alive(p)}
        stopped |= members
        if not members:
            break
        time.sleep(0.02)
    members = {p for p in members | tree(root) if alive(p)}
    stopped |= members
    if members:
        _signal_all(sorted(members), root, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while members and time.monotonic() < deadline:
            time.sleep(0.02)
            members = {p for p in members if alive(p)}
    return len(stopped)


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
    and collect its resource usage with wait4."""
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
    if on_start is not None:
        on_start()
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
    timed_out = not done.wait(timeout)
    stopped = 0
    if timed_out:
        stopped = kill_tree(proc.pid)
        done.wait()
    reaper.join()
    leftover = tree(proc.pid)  # background children the command left running
    if leftover:
        stopped += kill_tree(proc.pid)
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
