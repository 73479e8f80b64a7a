"""The probe's fork server: import torch once, fork one process per variant run.

Importing torch takes seconds; a probe runs dozens of variant processes. The
server (`python -I`, see `server_command`, started by `ProbeServer`)
imports torch with the thread count pinned in its environment, never touches
CUDA itself, and for each request forks a child that starts a new session,
runs one template variant, writes its JSON result to a pipe and exits. The
parent (the CLI) enforces the timeout by stopping the child's whole tree.

Protocol, one JSON object per line: the client sends
`{"id", "bench", "variant", "params"}`; the server answers `{"id", "pid"}` as
soon as the child runs, then `{"id", "result", "exit", "rusage"}`.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Optional

from greenops_lint.probe.procs import kill_tree

INSTALL_HINT = "pip install 'greenops-lint[probe]' (on CPU-only machines: pip install torch --index-url https://download.pytorch.org/whl/cpu)"
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


class ProbeError(Exception):
    """The probe cannot run (torch missing, the server died): exit 2."""


# -- the server (child side) -------------------------------------------------------------


def _send(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _child(request: dict, write_fd: int) -> None:
    """In the forked child: a new session, quiet stdio, run, report, exit."""
    code = 0
    try:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        from greenops_lint.probe import benches

        payload = {"result": benches.run(request)}
    except BaseException:  # noqa: BLE001 - report everything, then exit
        payload = {"error": traceback.format_exc(limit=8)}
        code = 1
    try:
        data = json.dumps(payload).encode()
        view = memoryview(data)
        while view:
            written = os.write(write_fd, view)
            view = view[written:]
    finally:
        os._exit(code)


def _warm(torch) -> None:
    """Do once what torch does lazily on first use (building an optimizer
    imports torch._dynamo: 2 s), so that no variant pays it. Tiny CPU ops on
    one thread only: no thread pool and no CUDA context exist before a fork."""
    try:
        model = torch.nn.Linear(2, 2)
        for optimizer in (
            torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
            torch.optim.AdamW(model.parameters()),
        ):
            with torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t):
                torch.nn.functional.cross_entropy(model(torch.ones(1, 2)), torch.zeros(1, dtype=torch.long)).backward()
            optimizer.step()
        import torch.distributed  # noqa: F401
        import torch.utils.data  # noqa: F401
    except Exception:  # noqa: BLE001 - warming is an optimisation only
        pass


def serve() -> int:
    try:
        import torch  # noqa: F401 - imported once here, inherited by every fork
    except ImportError as exc:
        _send({"ready": False, "error": f"torch is not installed ({exc})"})
        return 2
    try:
        import numpy  # noqa: F401
    except ImportError:
        pass
    from greenops_lint.probe import benches  # noqa: F401 - imported before forking

    _warm(torch)
    _send({"ready": True, "torch": torch.__version__, "pid": os.getpid()})
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            _child(request, write_fd)
        os.close(write_fd)
        _send({"id": request["id"], "pid": pid})
        chunks = []
        while True:
            chunk = os.read(read_fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(read_fd)
        _, status, usage = os.wait4(pid, 0)
        try:
            payload = json.loads(b"".join(chunks).decode()) if chunks else {}
        except ValueError:
            payload = {"error": "the variant's process wrote an unreadable result"}
        _send(
            {
                "id": request["id"],
                **payload,
                "exit": os.waitstatus_to_exitcode(status),
                "rusage": {
                    "cpu_s": usage.ru_utime + usage.ru_stime,
                    "maxrss_bytes": usage.ru_maxrss * 1024,
                },
            }
        )
    return 0


# -- the client (CLI side) ----------------------------------------------------------------


# The server's greenops_lint is loaded from the client's own copy by file
# location: a copy appended to sys.path loses to another one installed in
# site-packages (an editable install of a different checkout), and the client
# would then plan with one version and measure with another. Only this package
# is pinned; prepending its directory would put site-packages before the
# standard library.
_BOOTSTRAP = """
import importlib.util, os, sys
root = sys.argv.pop(1)
package = os.path.join(root, "greenops_lint")
spec = importlib.util.spec_from_file_location(
    "greenops_lint", os.path.join(package, "__init__.py"), submodule_search_locations=[package]
)
module = importlib.util.module_from_spec(spec)
sys.modules["greenops_lint"] = module
spec.loader.exec_module(module)
sys.path.append(root)
from greenops_lint.probe.server import serve
sys.exit(serve())
"""


def server_command(package_root: Optional[str] = None) -> list[str]:
    """The server's command line: an isolated interpreter (`-I`: neither the
    current directory, nor PYTHONPATH, nor the user's site-packages are on
    sys.path), started outside the project, so that a project's own `torch.py`
    or `pluggy.py` never runs. greenops_lint itself is the copy this process
    runs (it may come from PYTHONPATH or a source checkout), or `package_root`'s."""
    import greenops_lint

    package_root = package_root or os.path.dirname(os.path.dirname(os.path.abspath(greenops_lint.__file__)))
    return [sys.executable, "-I", "-c", _BOOTSTRAP, package_root]


class ProbeServer:
    """A running server; `run()` runs one variant in a fresh forked process."""

    def __init__(self, threads: int = 1, startup_timeout: float = 300.0) -> None:
        env = dict(os.environ)
        for name in THREAD_VARIABLES:
            env[name] = str(threads)
        env["PYTHONHASHSEED"] = "0"
        env.setdefault("PYTHONWARNINGS", "ignore")
        self.threads = threads
        # The server's stderr, inherited by every variant: an unnamed file that
        # disappears with its last descriptor, whatever way this process ends.
        self._log = tempfile.TemporaryFile(prefix="greenops-probe-")
        self._buffer = b""
        self._next = 0
        self.proc = subprocess.Popen(
            server_command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            cwd=tempfile.gettempdir(),
            start_new_session=True,
        )
        hello = self._read(startup_timeout)
        if hello is None or not hello.get("ready"):
            error = (hello or {}).get("error") or self._log_tail() or "the probe server did not start"
            self.close()
            if "torch" in error:
                raise ProbeError(f"the probe needs torch: {error}; install it with {INSTALL_HINT}")
            raise ProbeError(f"the probe server failed to start: {error}")
        self.torch_version = hello.get("torch")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _log_tail(self, limit: int = 2000) -> str:
        try:
            size = os.fstat(self._log.fileno()).st_size
            data = os.pread(self._log.fileno(), limit, max(0, size - limit))
            return data.decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""

    def _read(self, timeout: Optional[float]) -> Optional[dict]:
        """The next message, or None at the timeout or when the server is gone."""
        deadline = None if timeout is None else time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def run(self, bench: str, variant: str, params: dict, timeout: float) -> dict:
        """Run one variant; returns the server's answer plus `timed_out`,
        `stopped` (processes stopped at the timeout) and `seconds`."""
        self._next += 1
        request = {"id": self._next, "bench": bench, "variant": variant, "params": params}
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise ProbeError(f"the probe server is gone: {exc}; {self._log_tail()}") from None
        started = self._read(60.0)
        if started is None or "pid" not in started:
            raise ProbeError(f"the probe server did not start a variant: {self._log_tail()}")
        began = time.monotonic()
        answer = self._read(timeout)
        stopped = 0
        timed_out = answer is None and self.proc.poll() is None
        if timed_out:
            stopped = kill_tree(started["pid"])
            answer = self._read(60.0)
        if answer is None:
            raise ProbeError(f"the probe server stopped answering: {self._log_tail()}")
        answer["timed_out"] = timed_out
        answer["stopped"] = stopped
        answer["seconds"] = time.monotonic() - began
        answer["pid"] = started["pid"]
        return answer

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                kill_tree(self.proc.pid)
                self.proc.wait()
        else:
            kill_tree(self.proc.pid, grace=0.2)
        for stream in (self.proc.stdout,):
            try:
                stream.close()
            except (OSError, AttributeError):
                pass
        try:
            self._log.close()
        except OSError:
            pass

    def __enter__(self) -> "ProbeServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_SHARED: dict = {}


def shared_server(threads: int) -> ProbeServer:
    """One server per thread count for the life of this process (a CLI run
    uses one; a test session reuses it instead of importing torch again)."""
    server = _SHARED.get(threads)
    if server is None or server.proc.poll() is not None:
        server = _SHARED[threads] = ProbeServer(threads)
        if len(_SHARED) == 1:
            atexit.register(close_shared)
    return server


def discard_shared(server: ProbeServer) -> None:
    for key, value in list(_SHARED.items()):
        if value is server:
            del _SHARED[key]
    server.close()


def close_shared() -> None:
    for server in list(_SHARED.values()):
        server.close()
    _SHARED.clear()


if __name__ == "__main__":
    sys.exit(serve())
