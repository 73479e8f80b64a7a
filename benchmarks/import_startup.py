"""Start-up cost of importing a heavy ML package: the anchor of GO206's estimate.

For each module named on the command line (default: torch, numpy, pandas), starts a fresh
interpreter `--repeats` times for `import <module>` and for an empty program, interleaved, and
prints the median wall time of each and their difference: the seconds one process start spends
importing the module. The first start of each is a warm-up (it fills the page cache) and is not
counted, so the figure is a warm-cache one; a cold start (first run after boot, a network file
system, a container image layer) is slower.

    python benchmarks/import_startup.py [--repeats 9] [--json-out F] [module ...]

A module that is not installed is reported and skipped. Measured on CPU; the import itself does
no GPU work for torch (CUDA initialises lazily), so the figure holds on a GPU host too, but
TensorFlow's import is not measured here (not installed): GO206 cites a figure for it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

DEFAULT_MODULES = ("torch", "numpy", "pandas")


def _start(code: str) -> float:
    begin = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    return time.perf_counter() - begin


def measure(module: str, repeats: int) -> dict:
    probe = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True)
    if probe.returncode != 0:
        return {"module": module, "installed": False}
    _start("pass")  # warm-up of the interpreter and of the module's files
    _start(f"import {module}")
    empty, loaded = [], []
    for _ in range(repeats):
        empty.append(_start("pass"))
        loaded.append(_start(f"import {module}"))
    version = subprocess.run(
        [sys.executable, "-c", f"import {module}; print(getattr({module}, '__version__', '?'))"],
        capture_output=True, text=True,
    ).stdout.strip()
    return {
        "module": module,
        "installed": True,
        "version": version,
        "repeats": repeats,
        "empty_median_s": statistics.median(empty),
        "import_median_s": statistics.median(loaded),
        "import_min_s": min(loaded),
        "import_max_s": max(loaded),
        "import_cost_s": statistics.median(loaded) - statistics.median(empty),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", default=list(DEFAULT_MODULES))
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json-out")
    args = parser.parse_args(argv)
    host = f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}"
    print(f"import start-up cost, measured on CPU ({host}); warm page cache; {args.repeats} interleaved starts each")
    results = []
    for module in args.modules:
        result = measure(module, args.repeats)
        results.append(result)
        if not result["installed"]:
            print(f"  {module:<12} not installed: skipped")
            continue
        print(
            f"  {module:<12} {result['version']:<14} import {result['import_median_s']:.3f} s median "
            f"({result['import_min_s']:.3f}-{result['import_max_s']:.3f}), empty interpreter "
            f"{result['empty_median_s']:.3f} s: cost {result['import_cost_s']:.2f} s per process start"
        )
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as handle:
            json.dump({"host": host, "results": results}, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
