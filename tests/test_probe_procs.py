"""Stopping a command and all its children at the timeout, leaving no orphans."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from greenops_lint.probe.procs import alive, kill_tree, run_command, tree

# A parent that starts a child ignoring SIGTERM and a grandchild in a session
# of its own, writes their pids, and hangs.
HANG = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    pids = sys.argv[1]
    child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
    escaped = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    with open(pids, "w") as handle:
        handle.write(f"{os.getpid()} {child.pid} {escaped.pid}")
    time.sleep(600)
    """
)


def _pids(path, count=3, wait=20.0):
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if path.exists():
            values = path.read_text().split()
            if len(values) == count:
                return [int(v) for v in values]
        time.sleep(0.05)
    raise AssertionError("the test command did not start its children")


def test_kill_tree_stops_children_that_ignore_sigterm_and_leave_the_group(tmp_path):
    script = tmp_path / "hang.py"
    script.write_text(HANG)
    pid_file = tmp_path / "pids"
    proc = subprocess.Popen([sys.executable, str(script), str(pid_file)], start_new_session=True)
    pids = _pids(pid_file)
    assert set(pids) <= tree(proc.pid)
    started = time.monotonic()
    stopped = kill_tree(proc.pid, grace=0.5)
    proc.wait(10)
    assert stopped >= 3
    assert not any(alive(p) for p in pids)
    assert time.monotonic() - started < 10


def test_run_command_times_out_and_leaves_no_orphans(tmp_path):
    script = tmp_path / "hang.py"
    script.write_text(HANG)
    pid_file = tmp_path / "pids"
    done = run_command(f"{sys.executable} {script} {pid_file}", str(tmp_path), timeout=1.5)
    assert done.timed_out
    assert done.returncode is not None and done.returncode != 0
    assert done.stopped >= 3
    assert 1.5 <= done.wall_s < 15
    assert not any(alive(p) for p in _pids(pid_file))


def test_run_command_measures_a_normal_run_and_stops_leftovers(tmp_path):
    log = tmp_path / "log"
    done = run_command(
        f'{sys.executable} -c "print(sum(range(3000000)))"; (sleep 60 &) ; echo started',
        str(tmp_path),
        timeout=60,
        log_path=str(log),
    )
    assert done.returncode == 0 and not done.timed_out
    assert done.cpu_s > 0 and done.maxrss_bytes > 1_000_000
    assert "started" in log.read_text()
    assert done.extra.get("left_running", 0) >= 1  # the background sleep was stopped
    failed = run_command("exit 3", str(tmp_path), timeout=10)
    assert failed.returncode == 3
