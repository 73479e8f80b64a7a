"""Real-code triage corpus: greenops-lint with every rule on, over pinned wheels of public ML code.

Downloads the pinned wheels below with `pip download --no-deps --only-binary=:all:` into a cache
outside the repository (default ~/.cache/greenops-lint-corpus; a wheel that fails to download is
reported and skipped), extracts their .py files there, lints them all with every rule selected
(`--select ALL`, which turns on the default-off rules too, as in ruff), and prints:

  * files, lines and findings, per package and overall, and findings per 100k lines;
  * findings per rule (default on/off), and per 100k lines;
  * a reproducible stratified sample: `--per-rule N` findings of every rule (all where fewer),
    drawn with `--seed`, as `package@version path:line:col CODE message` lines to triage
    (verdicts go to benchmarks/triage.csv; paths are relative to the wheel's root).

    python benchmarks/real_corpus.py [--corpus libraries|scripts] [--seed 17] [--per-rule 10]
                                     [--json-out findings.json] [--wheels PINS] [--jobs 2] [--cache DIR]

Two corpora: `libraries` (the default, WHEELS: library code, trainers and model zoos) and
`scripts` (SCRIPT_WHEELS: wheels that ship real training scripts, recipes and examples; only
the files under each wheel's SCRIPT_PATHS patterns are linted and counted, since the rules
are per file and the rest of such a wheel is library code the first corpus covers).

`--json-out` writes every finding with its package and version, to compare runs. No third-party
file is ever written inside the repository.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import random
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import wheelcache  # benchmarks/wheelcache.py

# Libraries whose wheels hold real training code: trainers, loops, model zoos, examples.
# Pinned (and checked to exist on PyPI); each wheel is under 50 MB.
WHEELS = [
    "transformers==5.25.0",
    "diffusers==0.42.1",
    "lightning==2.6.6",
    "accelerate==1.16.0",
    "trl==1.16.0",
    "peft==0.21.2",
    "sentence-transformers==6.3.0",
    "ultralytics==8.4.190",
    "stable-baselines3==2.9.2",
    "skorch==1.4.0",
    "d2l==1.0.3",
    "keras==3.15.1",
    "speechbrain==1.1.2",
    "monai==1.6.1",
    "torchgeo==0.8.1",
    "pytorch-forecasting==1.8.0",
    "darts==0.48.1",
    "flair==0.15.1",
    "pykeen==1.11.1",
    "mosaicml==0.32.1",
    "timm==1.0.31",
    "pytorch-tabnet==4.1.0",
    "gpytorch==1.15.2",
    "avalanche-lib==0.6.0",
    "pytorch-metric-learning==2.9.0",
    "torch-geometric==2.8.1",
    "lightly==1.6.0",
    "pytorch-ignite==0.5.3",
]


# Wheels that ship training scripts nobody here wrote (PyPI only: sdists ship no examples), and
# the files of each that are scripts, recipes or examples. Patterns are fnmatch patterns over the
# path inside the wheel (`*` spans folders too); a wheel with no entry is linted whole. Pinned
# and checked to exist on PyPI as wheels; each is under 15 MB.
SCRIPT_WHEELS = [
    "yolov5==7.0.14",
    "litgpt==0.5.13",
    "torchtune==0.6.1",
    "open_clip_torch==3.3.0",
    "rl_zoo3==2.9.2",
    "sample-factory==2.1.1",
    "super-gradients==3.7.1",
    "pytorch-accelerated==0.1.61",
    "pytorch-lightning==1.4.9",
    "DI-engine==0.5.3",
    "tf-models-official==2.20.0",
    "llm-foundry==0.22.0",
    "opacus==1.6.0",
    "tensorflow-gan==2.1.0",
    "coqui-tts==0.28.0",
]
SCRIPT_PATHS: dict[str, tuple[str, ...]] = {
    # yolov5 and rl_zoo3 are training repositories packaged whole (train.py, val.py, their utils).
    "litgpt": ("litgpt/pretrain.py", "litgpt/finetune/*"),
    "torchtune": ("recipes/*",),
    "open_clip_torch": ("open_clip_train/*",),
    "sample_factory": ("sf_examples/*",),
    "super_gradients": ("super_gradients/examples/*", "super_gradients/train_from_*.py"),
    "pytorch_accelerated": ("examples/*",),
    "pytorch_lightning": ("pl_examples/*",),
    "di_engine": ("ding/example/*", "ding/entry/serial_entry*.py"),
    "tf_models_official": (
        "official/legacy/*",
        "official/*/train.py",
        "official/*/run_*.py",
        "official/*_main.py",
        "official/recommendation/*",
        "orbit/examples/*",
    ),
    "llm_foundry": ("llmfoundry/command_utils/*",),
    "opacus": ("examples/*",),
    "tensorflow_gan": ("tensorflow_gan/examples/*",),
    "coqui_tts": ("TTS/bin/*", "TTS/demos/*"),
}
# Never linted in the scripts corpus, whatever the patterns: tests of the scripts.
SCRIPT_EXCLUDES = ("*_test.py", "*/test_*.py", "*/tests/*")
CORPORA = {"libraries": (WHEELS, {}), "scripts": (SCRIPT_WHEELS, SCRIPT_PATHS)}


def is_script(relative: str, patterns: tuple[str, ...] | None) -> bool:
    """Whether the file at `relative` (inside its wheel) is one of its wheel's scripts."""
    if patterns is None:
        return True
    if any(fnmatch.fnmatchcase(relative, p) for p in SCRIPT_EXCLUDES):
        return False
    return any(fnmatch.fnmatchcase(relative, p) for p in patterns)


def normalized(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def package_of(folder_name: str) -> tuple[str, str]:
    """`transformers-5.25.0-py3-none-any` -> ("transformers", "5.25.0")."""
    name, version = folder_name.split("-")[:2]
    return name, version


def all_rules() -> dict[str, type]:
    from greenops_lint.plugins import load_rules

    return {code: cls for code, cls in load_rules().rules.items() if not code.startswith("GO00")}


def linted_files(corpus: Path, folders: list[Path]) -> list[Path]:
    """The files the linter itself would pick in `folders` (same discovery, default excludes)."""
    from greenops_lint.config import Config
    from greenops_lint.discovery import discover

    found = discover([str(f) for f in folders], Config(root=corpus))
    return [Path(p) for p in found.files]


def lint(corpus: Path, targets: list[str], rules: dict[str, type], jobs: int, select: str = "") -> list[dict]:
    """Lint `targets` (wheel folders, or files, relative to `corpus`) with every rule in `rules`."""
    config = corpus.parent / "greenops-lint-corpus.toml"  # empty: the defaults, whatever is around
    config.write_text("# settings for benchmarks/real_corpus.py: the defaults\n")
    select = select or "ALL"
    # --show-info: info findings (below their rule's materiality threshold) are
    # kept, with their severity, so that the counts show both.
    cmd = [
        sys.executable,
        "-m",
        "greenops_lint",
        "check",
        "--select",
        select,
        "--format",
        "json",
        "--show-info",
        "--exit-zero",
        "--no-cache",
        "-q",
        "--jobs",
        str(jobs),
        "--config",
        str(config),
        *targets,
    ]
    result = subprocess.run(cmd, cwd=corpus, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"greenops-lint failed ({result.returncode}): {result.stderr[-2000:]}")
    findings = []
    for item in json.loads(result.stdout or "[]"):
        top, _, relative = Path(item["path"]).as_posix().partition("/")
        name, version = package_of(top)
        findings.append(
            {"package": name, "version": version, "path": relative, **{k: v for k, v in item.items() if k != "path"}}
        )
    return findings


def sample(findings: list[dict], per_rule: int, seed: int) -> list[dict]:
    """`per_rule` findings of every rule (all where fewer), the same for the same seed and input."""
    by_rule: dict[str, list[dict]] = defaultdict(list)
    for f in findings:
        by_rule[f["code"]].append(f)
    chosen = []
    for code in sorted(by_rule):
        pool = sorted(by_rule[code], key=lambda f: (f["package"], f["path"], f["line"], f["column"]))
        rng = random.Random(f"{seed}:{code}")  # per rule: adding a rule does not reshuffle the others
        picked = pool if len(pool) <= per_rule else rng.sample(pool, per_rule)
        chosen.extend(sorted(picked, key=lambda f: (f["package"], f["path"], f["line"], f["column"])))
    return chosen


def per_100k(count: int, lines: int) -> float:
    return 100_000 * count / lines if lines else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--corpus",
        choices=sorted(CORPORA),
        default="libraries",
        help="libraries (default): library wheels linted whole; scripts: the training scripts of SCRIPT_WHEELS",
    )
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "greenops-lint-corpus")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--per-rule", type=int, default=10, help="sampled findings per rule (all where fewer)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json-out", type=Path, help="write every finding (with package@version) here")
    parser.add_argument("--wheels", help="comma-separated pins replacing the default set")
    parser.add_argument("--packages", help="comma-separated package names: lint only these of the pinned wheels")
    parser.add_argument(
        "--rules", help="comma-separated codes or prefixes (GO2,GO101): only these rules (default: every rule)"
    )
    parser.add_argument(
        "--include-info", action="store_true", help="sample info findings too (hidden by `check` unless --show-info)"
    )
    args = parser.parse_args()

    default_pins, script_paths = CORPORA[args.corpus]
    pins = args.wheels.split(",") if args.wheels else default_pins
    if args.packages:
        wanted = {p.strip().lower().replace("_", "-") for p in args.packages.split(",")}
        pins = [pin for pin in pins if pin.split("==")[0].lower().replace("_", "-") in wanted]
    wheels = wheelcache.download(args.cache, pins, strict=False, only_binary=True)
    skipped = [pin for pin, wheel in wheels.items() if wheel is None]
    corpus = args.cache / "corpus"
    folders = [wheelcache.extract_python(w, corpus) for w in wheels.values() if w is not None]
    if not folders:
        raise SystemExit("no wheel could be downloaded")

    rules = all_rules()
    if args.rules:
        prefixes = tuple(p.strip() for p in args.rules.split(",") if p.strip())
        rules = {code: cls for code, cls in rules.items() if code.startswith(prefixes)}
    files = [
        path
        for path in linted_files(corpus, folders)
        if is_script(
            path.relative_to(corpus).as_posix().partition("/")[2],
            script_paths.get(normalized(package_of(path.relative_to(corpus).parts[0])[0])) if script_paths else None,
        )
    ]
    # The default corpus names its wheel folders (as before); the scripts corpus its files.
    targets = [path.relative_to(corpus).as_posix() for path in files] if script_paths else [f.name for f in folders]
    lines_of: dict[str, int] = Counter()
    files_of: dict[str, int] = Counter()
    for path in files:
        top = path.relative_to(corpus).parts[0]
        lines_of[top] += path.read_bytes().count(b"\n")
        files_of[top] += 1
    lines = sum(lines_of.values())
    start = time.perf_counter()
    findings = lint(corpus, targets, rules, args.jobs, ",".join(rules) if args.rules else "")
    info = [f for f in findings if f.get("severity") == "info"]
    shown = [f for f in findings if f.get("severity") != "info"]
    seconds = time.perf_counter() - start

    print(
        f"greenops-lint real-code corpus ({args.corpus}): {len(folders)} wheels linted"
        + (f", {len(skipped)} skipped ({', '.join(skipped)})" if skipped else "")
    )
    print(
        f"files: {len(files)}  lines: {lines}  findings: {len(shown)} shown (+{len(info)} info, hidden by default)  "
        f"per 100k lines: {per_100k(len(shown), lines):.1f}  (lint {seconds:.0f} s, --jobs {args.jobs})"
    )
    print()
    print(f"{'package':34} {'files':>6} {'lines':>9} {'findings':>9} {'/100k':>7}")
    by_package = Counter(f"{f['package']}-{f['version']}" for f in shown)
    for folder in folders:
        name, version = package_of(folder.name)
        count = by_package[f"{name}-{version}"]
        print(
            f"{name + '@' + version:34} {files_of[folder.name]:6} {lines_of[folder.name]:9} {count:9} "
            f"{per_100k(count, lines_of[folder.name]):7.1f}"
        )
    print()
    print(f"{'rule':6} {'name':32} {'default':7} {'findings':>9} {'/100k':>7} {'info':>6}")
    by_rule = Counter(f["code"] for f in shown)
    info_by_rule = Counter(f["code"] for f in info)
    for code, cls in rules.items():
        default = "on" if getattr(cls, "default_enabled", True) else "off"
        print(
            f"{code:6} {cls.name:32} {default:7} {by_rule[code]:9} {per_100k(by_rule[code], lines):7.2f} "
            f"{info_by_rule[code]:6}"
        )
    other = sorted(set(by_rule) - set(rules))
    for code in other:  # GO001-GO003 (syntax errors, unreadable files, crashes)
        print(f"{code:6} {'(core)':32} {'on':7} {by_rule[code]:9} {per_100k(by_rule[code], lines):7.2f}")
    default_on = sum(n for code, n in by_rule.items() if code not in rules or rules[code].default_enabled)
    print(f"default-on rules: {default_on} findings, {per_100k(default_on, lines):.1f} per 100k lines")
    zero = [code for code in rules if not by_rule[code]]
    print(f"rules with no finding: {', '.join(zero) if zero else 'none'}")
    print()
    picked = sample(findings if args.include_info else shown, args.per_rule, args.seed)
    print(f"sample: seed {args.seed}, {args.per_rule} per rule (all where fewer), {len(picked)} findings")
    for f in picked:
        message = " ".join(f["message"].split())
        tag = " [info]" if f.get("severity") == "info" else ""
        print(f"{f['package']}@{f['version']} {f['path']}:{f['line']}:{f['column']} {f['code']}{tag} {message}")

    if args.json_out:
        args.json_out.write_text(json.dumps(findings, indent=1) + "\n")
        print(f"\n{len(findings)} findings written to {args.json_out}", file=sys.stderr)


if __name__ == "__main__":
    main()
