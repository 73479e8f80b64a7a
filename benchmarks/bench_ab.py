"""Two revisions of greenops-lint on the same files, interleaved: is B slower than A?

Checks out REV_A and REV_B (git worktrees in a temporary folder, removed
afterwards), then times `python -m greenops_lint check --no-cache --jobs 1
--select ALL,<default-off codes>` of each on the same files, alternating A B B A so that drift in
the machine's load falls on both, and prints each median, range and the ratio
B/A. Findings are compared too: a refactoring should report the same ones.

    python benchmarks/bench_ab.py REV_A REV_B PATH [PATH ...] [--repeats 3]

PATHs are files or folders to lint (e.g. a package folder of the real-code
corpus under ~/.cache/greenops-lint-corpus/corpus/). No timing is asserted
anywhere: this script only reports.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def checkout(rev: str, where: Path) -> Path:
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(where), rev], check=True, capture_output=True
    )
    return where


# Every rule, spelt so that older revisions (where ALL left out the default-off
# rules) run the same set.
SELECT = "ALL,GO105,GO303,GO305,GO507"


def run(tree: Path, paths: list[str], select: str = SELECT) -> tuple[float, list]:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    cmd = [
        sys.executable,
        "-m",
        "greenops_lint",
        "check",
        "--no-cache",
        "--jobs",
        "1",
        "--select",
        select,
        "--format",
        "json",
        "--exit-zero",
        "-q",
        *paths,
    ]
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if result.returncode not in (0, 1):
        raise SystemExit(f"{tree}: exit {result.returncode}: {result.stderr[-1500:]}")
    findings = sorted((f["path"], f["line"], f["code"]) for f in json.loads(result.stdout or "[]"))
    return seconds, findings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rev_a")
    parser.add_argument("rev_b")
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    paths = [str(Path(p).resolve()) for p in args.paths]
    with tempfile.TemporaryDirectory() as scratch:
        trees = {"A": checkout(args.rev_a, Path(scratch) / "a"), "B": checkout(args.rev_b, Path(scratch) / "b")}
        try:
            times: dict[str, list[float]] = {"A": [], "B": []}
            found: dict[str, list] = {}
            run(trees["A"], paths)  # warm the file cache and the bytecode of both
            run(trees["B"], paths)
            for _ in range(args.repeats):
                for label in ("A", "B", "B", "A"):
                    seconds, findings = run(trees[label], paths)
                    times[label].append(seconds)
                    found[label] = findings
        finally:
            for tree in trees.values():
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                    check=False,
                    capture_output=True,
                )
    for label, rev in (("A", args.rev_a), ("B", args.rev_b)):
        series = times[label]
        print(
            f"{label} {rev:12} median {statistics.median(series):6.2f} s  "
            f"range {min(series):.2f}-{max(series):.2f} s  ({len(series)} runs, {len(found[label])} findings)"
        )
    print(f"ratio B/A: {statistics.median(times['B']) / statistics.median(times['A']):.3f}")
    only_a = sorted(set(found["A"]) - set(found["B"]))
    only_b = sorted(set(found["B"]) - set(found["A"]))
    print(f"findings only in A: {len(only_a)}, only in B: {len(only_b)}")
    for item in (only_a + only_b)[:20]:
        print("  ", "A" if item in only_a else "B", *item)


if __name__ == "__main__":
    main()
