"""Pinned wheels downloaded once into a cache outside the repository, their .py files extracted.

Shared by bench_corpus.py (speed) and real_corpus.py (triage). Only `pip download --no-deps`
is used: nothing is installed, and no third-party file ever lands in the repository.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path


def wheel_prefix(requirement: str) -> str:
    """The file-name prefix of the wheel of a `name==version` pin."""
    name, version = requirement.split("==")
    return f"{name.replace('-', '_').replace('.', '_')}-{version}-"


def find_wheel(wheels: Path, requirement: str) -> Path | None:
    prefix = wheel_prefix(requirement).lower()
    for wheel in sorted(wheels.glob("*.whl")):
        if wheel.name.lower().startswith(prefix):
            return wheel
    return None


def download(
    cache: Path, requirements: list[str], *, strict: bool = True, only_binary: bool = False
) -> dict[str, Path | None]:
    """Each pin -> its wheel in `cache`/wheels (downloaded when missing).

    With `strict` a failed download raises; otherwise it is reported on stderr and the pin maps
    to None (one `pip download` per missing pin, so one failure does not hide the others)."""
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    found = {requirement: find_wheel(wheels, requirement) for requirement in requirements}
    missing = [r for r, wheel in found.items() if wheel is None]
    if not missing:
        return found
    print(f"downloading {', '.join(missing)} ...", file=sys.stderr)
    base = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels)]
    if only_binary:
        base.append("--only-binary=:all:")
    batches = [missing] if strict else [[r] for r in missing]
    failed: set[str] = set()
    for batch in batches:
        result = subprocess.run(base + batch, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            message = (result.stderr.strip().splitlines() or ["pip download failed"])[-1]
            if strict:
                raise RuntimeError(f"pip download {' '.join(batch)}: {message}")
            print(f"skipped {batch[0]}: {message}", file=sys.stderr)
            failed.update(batch)
    for requirement in missing:
        found[requirement] = find_wheel(wheels, requirement)
        if found[requirement] is None and requirement not in failed:
            print(f"skipped {requirement}: no wheel after download", file=sys.stderr)
    return found


def extract_python(wheel: Path, corpus: Path) -> Path:
    """The folder `corpus`/<wheel stem> holding the wheel's .py files (extracted once)."""
    target = corpus / wheel.stem
    if not target.exists():
        partial = corpus / (wheel.stem + ".partial")
        with zipfile.ZipFile(wheel) as archive:
            members = [m for m in archive.namelist() if m.endswith(".py")]
            archive.extractall(partial, members)
        partial.rename(target)
    return target
