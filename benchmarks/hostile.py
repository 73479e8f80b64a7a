"""Run the hostile set of issue 21 (tests/test_hostile.py: each case builds
its hostile input itself) and print every failure; then measure the peak
memory of one linting process on generated 2 MB literals (issue 21: under
500 MB per worker; it was 1.6-1.8 GB before the token cap in engine.py).
Exit 1 if anything failed.

    python benchmarks/hostile.py [--memory-only]
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


class _Collect:
    def __init__(self) -> None:
        self.failures: list[str] = []
        self.ran = 0

    def pytest_runtest_logreport(self, report) -> None:
        if report.when == "call" or report.failed:
            self.ran += report.when == "call"
            if report.failed:
                self.failures.append(report.nodeid)


PEAK_LIMIT_MB = 500


def _literal(seed: int) -> str:
    """~1.9 MB of generated nested float lists, with code a rule looks at."""
    rng = random.Random(seed)
    rows = ["    [" + ", ".join(f"{rng.random():.4f}" for _ in range(8)) + "],\n" for _ in range(27_500)]
    return "import torch\nW = torch.tensor([\n" + "".join(rows) + "])\nmodel = net.double()\n"


def memory_check(files: int = 16, jobs: int = 2) -> bool:
    """Lint `files` generated literals with `check --jobs`; print the largest
    peak RSS of any one process (the parent or a worker) and the wall time."""
    with tempfile.TemporaryDirectory(prefix="greenops-hostile-") as folder:
        for index in range(files):
            Path(folder, f"weights_{index:02}.py").write_text(_literal(index))
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "greenops_lint", "check", folder, "--no-cache", "--jobs", str(jobs)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        output = proc.stdout.read().decode("utf-8", "replace")
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    # RUSAGE_CHILDREN's ru_maxrss: the largest peak among the processes waited
    # for, workers included (the check process waits for them).
    import resource

    peak_mb = max(usage.ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    skipped = output.count("token limit")
    ok = peak_mb < PEAK_LIMIT_MB and skipped == files
    print(
        f"memory: {files} generated 2 MB literals, check --jobs {jobs}: peak RSS per process {peak_mb:.0f} MB "
        f"(limit {PEAK_LIMIT_MB} MB), {skipped}/{files} skipped with GO002 at the token cap, {wall:.1f} s"
        + ("" if ok else "  FAILED")
    )
    return ok


def main() -> int:
    failures = 0
    if "--memory-only" not in sys.argv:
        collect = _Collect()
        pytest.main(
            ["-q", "-p", "no:cacheprovider", "--no-header", "-rN", str(ROOT / "tests" / "test_hostile.py")],
            plugins=[collect],
        )
        for name in collect.failures:
            print(f"FAILED {name}")
        print(f"hostile set: {collect.ran} cases, {len(collect.failures)} failures")
        failures += len(collect.failures)
    failures += not memory_check()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
