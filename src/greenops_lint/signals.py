"""SIGTERM as a normal exit: `finally` blocks run (temporary folders are
removed, worker processes stopped) instead of the process vanishing. And a
closed stdout pipe (`greenops-lint check | head`) as a quiet exit."""

from __future__ import annotations

import os
import signal
import sys
import threading

EXIT_TERMINATED = 128 + signal.SIGTERM
# What a shell shows for a program that SIGPIPE ended (`yes | head`); distinct
# from 1 (findings) and 2 (errors), so a CI pipeline cannot take it for either.
EXIT_PIPE_CLOSED = 128 + getattr(signal, "SIGPIPE", 13)


def _terminate(signum, frame):  # pragma: no cover - exercised through a subprocess
    raise SystemExit(EXIT_TERMINATED)


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit in this (main) process."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)


def default_sigterm() -> None:
    """For forked children: SIGTERM ends them at once."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def stdout_closed() -> bool:
    """Is stdout a pipe whose reader has gone? (A BrokenPipeError can also come
    from a worker's pipe: that one is an internal error.) Where poll() cannot
    tell, the BrokenPipeError is taken to be stdout's."""
    try:
        import select

        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except AttributeError:  # no poll() (Windows)
        return True
    except (OSError, ValueError):  # not a real file (a test runner's buffer)
        return False


def silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's final flush of what
    is still buffered does not fail again (Python's documented way; see the
    "Note on SIGPIPE" in the signal module's documentation)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
