"""SIGTERM as a normal exit: `finally` blocks run (temporary folders are
removed, worker processes stopped) instead of the process vanishing."""

from __future__ import annotations

import signal
import threading

EXIT_TERMINATED = 128 + signal.SIGTERM


def _terminate(signum, frame):  # pragma: no cover - exercised through a subprocess
    raise SystemExit(EXIT_TERMINATED)


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit in this (main) process."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)


def default_sigterm() -> None:
    """For forked children: SIGTERM ends them at once."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
