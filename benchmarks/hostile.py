"""Run the hostile set of issue 21 (tests/test_hostile.py: each case builds
its hostile input itself) and print every failure; exit 1 if any failed.

    python benchmarks/hostile.py
"""

from __future__ import annotations

import sys
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


def main() -> int:
    collect = _Collect()
    pytest.main(["-q", "-p", "no:cacheprovider", "--no-header", "-rN", str(ROOT / "tests" / "test_hostile.py")],
                plugins=[collect])
    for name in collect.failures:
        print(f"FAILED {name}")
    print(f"hostile set: {collect.ran} cases, {len(collect.failures)} failures")
    return 1 if collect.failures else 0


if __name__ == "__main__":
    sys.exit(main())
