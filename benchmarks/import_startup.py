"""Start-up cost of importing a heavy ML package: the anchor of GO206's estimate.

For each module named on the command line (default: torch, numpy, pandas), starts a fresh
interpreter `--repeats` times for `import <module>` and for an empty program, interleaved, and
prints the median wall time and CPU time (user + system, from `wait4`) of each and their
differences: the seconds one process start spends importing the module. On a loaded host the wall
time includes waiting for a core; the CPU time is the work itself, and is the figure to quote. The first start of each is a warm-up (it fills the page cache) and is not
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


def _start(code: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system) of one fresh interpreter running `code`."""
    begin = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - begin
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, code)
    return wall, usage.ru_utime + usage.ru_stime


def measure(module: str, repeats: int) -> dict:
    probe = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True)
    if probe.returncode != 0:
        return {"module": module, "installed": False}
    _start("pass")  # warm-up of the interpreter and of the module's files
    _start(f"import {module}")
    empty, loaded, empty_cpu, loaded_cpu = [], [], [], []
    for _ in range(repeats):
        wall, cpu = _start("pass")
        empty.append(wall)
        empty_cpu.append(cpu)
        wall, cpu = _start(f"import {module}")
        loaded.append(wall)
        loaded_cpu.append(cpu)
    version = subprocess.run(
        [sys.executable, "-c", f"import {module}; print(getattr({module}, '__version__', '?'))"],
        capture_output=True,
        text=True,
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
        "import_cpu_median_s": statistics.median(loaded_cpu),
        "import_cpu_min_s": min(loaded_cpu),
        "import_cpu_max_s": max(loaded_cpu),
        "import_cpu_cost_s": statistics.median(loaded_cpu) - statistics.median(empty_cpu),
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
            f"{result['empty_median_s']:.3f} s: cost {result['import_cost_s']:.2f} s wall per process start; "
            f"CPU time (user+sys) {result['import_cpu_median_s']:.3f} s median ({result['import_cpu_min_s']:.3f}-"
            f"{result['import_cpu_max_s']:.3f}): cost {result['import_cpu_cost_s']:.2f} s CPU per process start"
        )
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as handle:
            json.dump({"host": host, "results": results}, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
