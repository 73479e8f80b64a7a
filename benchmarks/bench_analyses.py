"""What the shared analyses cost on top of LibCST's parse, on real ML code.

Runs, interleaved and repeated, over the same files (parsed once per repeat
and variant):

  parse        libcst.parse_module only
  walk         + the engine's single walk with the name resolver (no rules)
  loops        + the walk-fed loop-context analysis (GO1xx/GO5xx rules use it)
  all-rules    + every built-in rule (what `check` does, minus positions)
  qnp          parse + LibCST's QualifiedNameProvider (what the resolver replaces)

and prints seconds (median) and each variant's ratio to the parse.

    python benchmarks/bench_analyses.py [DIR ...] [--repeats 3] [--limit 150]

Without DIR it uses the corpus that bench_corpus.py caches
(~/.cache/greenops-lint-bench/corpus, timm's models).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import libcst as cst
from libcst.metadata import MetadataWrapper, QualifiedNameProvider

from greenops_lint.analysis.loops import LoopAnalysis
from greenops_lint.config import Config
from greenops_lint.context import FileContext
from greenops_lint.plugins import load_rules
from greenops_lint.rule import dispatch_methods
from greenops_lint.savings import get_hardware
from greenops_lint.walker import Dispatch, TreeWalk


def walk(text: str, with_loops: bool, rules=()) -> None:
    module = cst.parse_module(text)
    ctx = FileContext("x.py", module, text, get_hardware(None))
    dispatch = Dispatch()
    if with_loops:
        ctx.loops = LoopAnalysis(ctx)
        for event, name, method in dispatch_methods(LoopAnalysis):
            dispatch.add(event, getattr(cst, name), getattr(ctx.loops, method))
    config = Config()
    for cls in rules:
        rule = cls(ctx, config.options_for(cls.code))
        for event, name, method in dispatch_methods(cls):
            dispatch.add(event, getattr(cst, name), getattr(rule, method))
    TreeWalk(ctx, dispatch, lambda handler, exc: None).run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dirs", nargs="*", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=150, help="files at most")
    args = parser.parse_args()
    dirs = args.dirs or [Path.home() / ".cache" / "greenops-lint-bench" / "corpus"]
    files = sorted(p for d in dirs for p in d.rglob("*.py") if "/timm/models/" in p.as_posix() or args.dirs)[
        : args.limit
    ]
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in files]
    rules = [cls for cls in load_rules().rules.values() if cls.family != "core"]
    variants = {
        "parse": lambda t: cst.parse_module(t),
        "walk": lambda t: walk(t, False),
        "loops": lambda t: walk(t, True),
        "all-rules": lambda t: walk(t, True, rules),
        "qnp": lambda t: MetadataWrapper(cst.parse_module(t)).resolve(QualifiedNameProvider),
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for repeat in range(args.repeats):
        order = list(variants) if repeat % 2 == 0 else list(reversed(variants))
        for name in order:
            start = time.perf_counter()
            for text in texts:
                variants[name](text)
            samples[name].append(time.perf_counter() - start)
    lines = sum(t.count("\n") for t in texts)
    parse = statistics.median(samples["parse"])
    print(f"files: {len(texts)}, lines: {lines}, repeats: {args.repeats}")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:10} {median:7.2f} s   x parse {median / parse:5.2f}")
    walk_s, loops_s = statistics.median(samples["walk"]), statistics.median(samples["loops"])
    print(f"loop analysis on top of parsing: {100 * (loops_s - walk_s) / parse:.1f}% of the parse time")


if __name__ == "__main__":
    main()
