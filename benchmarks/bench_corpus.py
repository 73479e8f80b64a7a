"""Speed of greenops-lint on real ML code, against LibCST's own parse and a peer.

Builds a pinned corpus from wheels that `pip download --no-deps` fetches into a
cache outside the repository (default ~/.cache/greenops-lint-bench), then, in
ONE run, measures interleaved and repeated:

  (a) parse    LibCST parse of every file, one process (the floor)
  (b) cold1    greenops-lint check --jobs 1 --no-cache
  (c) cold2    greenops-lint check --jobs 2 --no-cache
  (d) warm     greenops-lint check --jobs 2 with a primed cache (no file changed)
  (e) torchfix TorchFix's CLI, one process, in its own venv (skipped if it
               cannot be installed: it pins libcst < 1.6)
  (f) changed  as (d), after an edit to the largest file (a new comment line
               each time, so it is a cache miss every time)
  (g) single   that largest file alone, --no-cache: what (f) should cost
  (a') parse-  LibCST parse as greenops-lint runs it (no node validation, no
       fast    cycle collector; see src/greenops_lint/parsing.py): the floor
               the engine really stands on, printed for transparency

and prints files, lines, findings, seconds (median and range), peak RSS, and
the ratios b/a, b/a', e/b, b/c, d/b, f/g. `--scale` uses every .py file of the wheels
(the monorepo run, ~2,800 files and 1.4M lines with the default pins).

    python benchmarks/bench_corpus.py [--repeats 3] [--scale] [--no-torchfix] [--wheels PINS]

No timing is asserted anywhere: this script only reports.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import wheelcache  # benchmarks/wheelcache.py, shared with real_corpus.py

WHEELS = ["transformers==4.46.3", "timm==1.0.12", "diffusers==0.31.0", "lightning==2.4.0"]
TORCHFIX = "torchfix==0.7.0"
# The default (non --scale) corpus: whole packages of training-library code,
# about 500 files / 200k lines, the size the DESIGN figures were measured on.
DEFAULT_SUBSETS = [
    "timm/models",
    "timm/layers",
    "lightning/pytorch/trainer",
    "lightning/pytorch/loops",
    "lightning/fabric",
    "diffusers/models",
    "transformers/models/bert",
    "transformers/models/gpt2",
    "transformers/models/llama",
    "transformers/models/t5",
    "transformers/models/vit",
    "transformers/models/whisper",
    "transformers/trainer.py",
]

PARSE_ONLY = """
import sys, libcst
for path in sys.stdin.read().split("\\0"):
    if path:
        try:
            libcst.parse_module(open(path, "rb").read())
        except Exception:
            pass
"""
PARSE_FAST = """
import sys
from greenops_lint.parsing import collector_paused, parse_module
for path in sys.stdin.read().split("\\0"):
    if path:
        try:
            with collector_paused():
                parse_module(open(path, "rb").read().decode("utf-8"))
        except Exception:
            pass
"""


def run(cmd, **kwargs):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)


def build_corpus(cache: Path, requirements: list[str]) -> list[Path]:
    """The extracted folders of the pinned wheels (downloaded once into `cache`)."""
    wheels = wheelcache.download(cache, requirements, strict=True)
    return [wheelcache.extract_python(wheel, cache / "corpus") for wheel in wheels.values()]


def select_files(folders: list[Path], scale: bool) -> list[Path]:
    chosen = []
    for folder in folders:
        for path in folder.rglob("*.py"):
            relative = path.relative_to(folder).as_posix()
            if scale or any(relative == s or relative.startswith(s + "/") for s in DEFAULT_SUBSETS):
                chosen.append(path)
    return sorted(chosen)


def torchfix_command(cache: Path):
    venv = cache / "torchfix-venv"
    exe = venv / "bin" / "torchfix"
    if not exe.exists():
        try:
            run([sys.executable, "-m", "venv", str(venv)])
            run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", TORCHFIX], timeout=600)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            print(f"torchfix unavailable: {exc}", file=sys.stderr)
            return None
    return [str(exe), "--select", "ALL"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "greenops-lint-bench")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale", action="store_true", help="every .py file of the wheels (monorepo scale)")
    parser.add_argument("--no-torchfix", action="store_true")
    parser.add_argument(
        "--wheels",
        help="comma-separated pins replacing the default set, e.g. "
        "transformers==4.57.6,timm==1.0.20,diffusers==0.35.2,lightning==2.5.5",
    )
    args = parser.parse_args()

    folders = build_corpus(args.cache, args.wheels.split(",") if args.wheels else WHEELS)
    files = select_files(folders, args.scale)
    lines = sum(p.read_bytes().count(b"\n") for p in files)
    work = Path(tempfile.mkdtemp(prefix="greenops-bench-"))
    # At --scale the paths would overflow the argument list: lint the folder.
    file_args = [str(f) for f in folders] if args.scale else [str(p) for p in files]
    lint = [sys.executable, "-m", "greenops_lint", "check", "--exit-zero", "-q", "--format", "json"]
    cache_dir = work / "cache"
    edited = max(files, key=lambda p: p.stat().st_size)
    original = edited.read_bytes()
    edited_lines = original.count(b"\n")
    commands = {
        "parse": ([sys.executable, "-c", PARSE_ONLY], "\0".join(str(p) for p in files).encode()),
        "parse-fast": ([sys.executable, "-c", PARSE_FAST], "\0".join(str(p) for p in files).encode()),
        "cold1": (lint + ["--jobs", "1", "--no-cache", *file_args], None),
        "cold2": (lint + ["--jobs", "2", "--no-cache", *file_args], None),
        "warm": (lint + ["--jobs", "2", "--cache-dir", str(cache_dir), *file_args], None),
        "changed": (lint + ["--jobs", "2", "--cache-dir", str(cache_dir), *file_args], None),
        "single": (lint + ["--jobs", "1", "--no-cache", str(edited)], None),
    }
    if not args.no_torchfix:
        torchfix = torchfix_command(args.cache)
        if torchfix:
            commands["torchfix"] = (torchfix + file_args, None)

    # Prime the cache once; the warm runs then find every file in it.
    subprocess.run(commands["warm"][0], capture_output=True, check=False)
    samples: dict[str, list[float]] = {name: [] for name in commands}
    peaks: dict[str, int] = {}
    findings = 0
    edits = 0
    for repeat in range(args.repeats):
        order = list(commands) if repeat % 2 == 0 else list(reversed(commands))  # A B C / C B A
        for name in order:
            cmd, stdin = commands[name]
            if name == "changed":
                edits += 1
                edited.write_bytes(original + f"# greenops-bench edit {os.getpid()}-{edits}\n".encode())
            # ru_maxrss of RUSAGE_CHILDREN is a running maximum: measure each
            # command in a fresh helper process so the figure is its own.
            command_file = work / "command.json"
            command_file.write_text(json.dumps(cmd))
            probe = [sys.executable, "-c", _PEAK_PROBE, str(command_file)]
            try:
                result = subprocess.run(probe, input=stdin, capture_output=True, check=False)
            finally:
                if name == "changed":
                    edited.write_bytes(original)
            report = json.loads(result.stdout.decode().splitlines()[-1])
            samples[name].append(report["seconds"])
            peaks[name] = max(peaks.get(name, 0), report["peak_kib"])
            if name == "cold1" and repeat == 0:
                findings = report["findings"]
        print(f"repeat {repeat + 1}/{args.repeats} done", file=sys.stderr)

    medians = {name: statistics.median(values) for name, values in samples.items()}
    print(f"corpus: {len(files)} files, {lines} lines ({'scale' if args.scale else 'default'}), findings: {findings}")
    print(
        f"edited file for (f)/(g): {next(edited.relative_to(f) for f in folders if f in edited.parents)} ({edited_lines} lines)"
    )
    print(f"{'run':10} {'median s':>9} {'min s':>8} {'max s':>8} {'peak MiB':>9}")
    for name, values in samples.items():
        print(f"{name:10} {medians[name]:9.2f} {min(values):8.2f} {max(values):8.2f} {peaks[name] / 1024:9.0f}")
    print("ratios:")
    print(f"  cold --jobs 1 / parse only (b/a): {medians['cold1'] / medians['parse']:.2f}  (target <= 1.5)")
    print(
        f"  cold --jobs 1 / fast parse (b/a'): {medians['cold1'] / medians['parse-fast']:.2f}  (the engine's own floor)"
    )
    if "torchfix" in medians:
        print(f"  torchfix / cold --jobs 1  (e/b): {medians['torchfix'] / medians['cold1']:.1f}  (target >= 10)")
    print(f"  --jobs 1 / --jobs 2        (b/c): {medians['cold1'] / medians['cold2']:.2f}  (target >= 1.7)")
    print(f"  warm / cold --jobs 1       (d/b): {medians['warm'] / medians['cold1']:.3f}  (target <= 0.05)")
    print(f"  one changed / that file alone (f/g): {medians['changed'] / medians['single']:.2f}  (target: close to 1)")
    shutil.rmtree(work, ignore_errors=True)


# Runs one command, waits for it with wait4 (its own rusage: wall, peak RSS of
# the process and the children it waited for), prints one JSON line.
_PEAK_PROBE = r"""
import json, os, subprocess, sys, time
cmd = json.loads(open(sys.argv[1]).read())
data = sys.stdin.buffer.read()
start = time.perf_counter()
proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
out, _ = proc.communicate(data)
seconds = time.perf_counter() - start
import resource
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
findings = 0
try:
    findings = len(json.loads(out or b"[]"))
except ValueError:
    pass
print(json.dumps({"seconds": seconds, "peak_kib": peak, "findings": findings}))
"""


if __name__ == "__main__":
    main()
