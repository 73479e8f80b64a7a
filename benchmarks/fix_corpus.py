"""Autofix on real ML code: every file still parses, a second run changes nothing,
files without fixable findings stay byte-identical.

Copies a folder of real code (default: the corpus bench_corpus.py caches) to a
temporary directory, runs `check --fix --unsafe-fixes` twice, and prints the
counts. Never touches the original folder.

    python benchmarks/fix_corpus.py [DIR] [--limit 600]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import libcst as cst

DEFAULT = Path.home() / ".cache" / "greenops-lint-bench" / "corpus"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fix(folder: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "greenops_lint",
            "check",
            str(folder),
            "--fix",
            "--unsafe-fixes",
            "--no-cache",
            "-q",
            "--exit-zero",
        ],
        capture_output=True,
        check=False,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--limit", type=int, default=600, help="files at most")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="greenops-fix-")) / "code"
    files = sorted(args.folder.rglob("*.py"))[: args.limit]
    for path in files:
        target = work / path.relative_to(args.folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    copies = sorted(work.rglob("*.py"))
    before = {p: digest(p) for p in copies}
    fix(work)
    after_first = {p: digest(p) for p in copies}
    changed = [p for p in copies if before[p] != after_first[p]]
    broken = []
    for path in changed:
        try:
            cst.parse_module(path.read_bytes())
        except Exception:  # noqa: BLE001
            broken.append(path)
    fix(work)
    not_idempotent = [p for p in copies if digest(p) != after_first[p]]
    print(
        f"files: {len(copies)}, changed by --fix --unsafe-fixes: {len(changed)}, "
        f"not parsing afterwards: {len(broken)}, changed again by a second run: {len(not_idempotent)}"
    )
    for path in broken + not_idempotent:
        print(f"  {path.relative_to(work)}")
    shutil.rmtree(work.parent, ignore_errors=True)
    return 1 if broken or not_idempotent else 0


if __name__ == "__main__":
    raise SystemExit(main())
