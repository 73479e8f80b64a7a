"""Long fuzz run: mutate the fixtures and lint each case; count failures.

A failure is an exception escaping the linter or a GO003 (internal error)
finding. Failing inputs are saved (default: tests/data/fuzz_regressions/)
so that tests/test_reliability.py keeps them as regression cases.

    python benchmarks/fuzz.py [--cases 10000] [--seconds 900] [--seed 1]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from greenops_lint.config import Config  # noqa: E402
from greenops_lint.engine import Linter  # noqa: E402
from greenops_lint.plugins import load_rules  # noqa: E402
from mutations import mutate, seed_sources  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=900)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--save", type=Path, default=ROOT / "tests" / "data" / "fuzz_regressions")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    sources = seed_sources()
    registry = load_rules()
    linter = Linter(Config(root=ROOT), registry.rules)
    start = time.monotonic()
    run = failures = 0
    outcomes = {"findings": 0, "GO001": 0, "GO002": 0, "clean": 0}
    while run < args.cases and time.monotonic() - start < args.seconds:
        case = mutate(rng.choice(sources), rng)
        path = "case.ipynb" if rng.random() < 0.05 else "case.py"
        run += 1
        try:
            findings = linter.lint_bytes(path, case).findings
            problem = next((f.message for f in findings if f.code == "GO003"), None)
        except Exception:  # noqa: BLE001 - that is what we are looking for
            problem = traceback.format_exc()
            findings = []
        codes = {f.code for f in findings}
        outcomes[
            "GO001" if "GO001" in codes else "GO002" if "GO002" in codes else "findings" if findings else "clean"
        ] += 1
        if problem:
            failures += 1
            args.save.mkdir(parents=True, exist_ok=True)
            name = hashlib.sha256(case).hexdigest()[:16] + ".py"
            (args.save / name).write_bytes(case)
            print(f"FAILURE {name}: {problem.splitlines()[-1]}", file=sys.stderr)
    elapsed = time.monotonic() - start
    print(f"cases run: {run}, failures: {failures}, seconds: {elapsed:.0f}, outcomes: {outcomes}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
