"""Time GO101 (and the other loop rules) on one loop that holds thousands of loads
(issue 21: 5,000 loads in one loop took 242 s to check and `--fix` did not
finish in 25 min, because every load re-scanned the whole loop body).

    python benchmarks/bench_loop_loads.py [--loads 5000] [--no-fix]

Prints the time of `check` (GO1xx and GO5xx selected, in process) and of
`--fix --unsafe-fixes` on a generated file; targets: check < 5 s, fix < 30 s.
Both wall and CPU time are printed; the targets are judged on CPU time (this
process), which a machine shared with other jobs does not inflate. Exit 1 when
a target is missed. Not a test: the times depend on the machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

CHECK_TARGET_S = 5.0
FIX_TARGET_S = 30.0


def source(loads: int) -> str:
    lines = ["import numpy as np", "import pandas as pd", "import torch", "", "for epoch in range(10):"]
    for i in range(loads):
        kind = i % 3
        if kind == 0:
            lines.append(f"    w{i} = torch.load('weights_{i}.pt')")
        elif kind == 1:
            lines.append(f"    df{i} = pd.read_csv('table_{i}.csv')")
        else:
            lines.append(f"    if w{i - 2} is None:\n        a{i} = np.load('array_{i}.npy')")
    lines += ["    for batch in loader:", "        loss = model(batch).mean()", "        loss.backward()", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=5000)
    parser.add_argument("--no-fix", action="store_true", help="time the check only")
    args = parser.parse_args()

    from greenops_lint.config import Config
    from greenops_lint.engine import Linter
    from greenops_lint.fixes import fix_paths
    from greenops_lint.plugins import load_rules

    rules = {code: cls for code, cls in load_rules().rules.items() if code.startswith(("GO1", "GO5", "GO00"))}
    text = source(args.loads)
    ok = True
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "many_loads.py"
        path.write_text(text)
        linter = Linter(Config(root=Path(folder)), rules)
        start, cpu = time.perf_counter(), time.process_time()
        findings = linter.lint_bytes(str(path), text.encode()).findings
        check_s, check_cpu = time.perf_counter() - start, time.process_time() - cpu
        ok &= check_cpu < CHECK_TARGET_S
        print(
            f"check: {args.loads} loads in one loop, {len(findings)} findings, {check_s:.2f} s wall, "
            f"{check_cpu:.2f} s CPU (target < {CHECK_TARGET_S:g} s)"
        )
        if not args.no_fix:
            start, cpu = time.perf_counter(), time.process_time()
            (outcome,) = fix_paths([str(path)], Config(root=Path(folder)), rules, unsafe=True, write=True)
            fix_s, fix_cpu = time.perf_counter() - start, time.process_time() - cpu
            ok &= fix_cpu < FIX_TARGET_S
            hoisted = sum(1 for line in path.read_text().splitlines() if line.startswith(("w", "df")))
            print(
                f"fix:   {len(outcome.applied)} fixes applied, {hoisted} loads moved before the loop, "
                f"{fix_s:.2f} s wall, {fix_cpu:.2f} s CPU (target < {FIX_TARGET_S:g} s)"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
