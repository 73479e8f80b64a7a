"""The result cache: a file's findings, keyed by its content, the effective
configuration, the tool version and the plugin set.

Entries live under `.greenops_lint_cache/` next to the configuration (like
`.ruff_cache`), one small JSON file each, written atomically (temporary file
+ `os.replace`), so two runs sharing the directory never see half an entry.
An entry that cannot be read or decoded, or that belongs to another key, is
ignored and rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Optional

from greenops_lint import __version__
from greenops_lint.fileio import atomic_write
from greenops_lint.finding import Finding, SavingsEstimate

CACHE_DIR_NAME = ".greenops_lint_cache"
_FORMAT = "1"


def code_stamp(modules: list[str]) -> list[tuple[str, int, int]]:
    """Size and mtime of the linter's own files and of every rule's module, so an
    edited rule (a development install, an upgraded plugin) invalidates entries."""
    package = Path(__file__).resolve().parent
    files = {str(p) for p in package.rglob("*.py")} | {m for m in modules if m}
    stamp = []
    for name in sorted(files):
        try:
            info = os.stat(name)
        except OSError:
            continue
        stamp.append((name, info.st_mtime_ns, info.st_size))
    return stamp


def config_fingerprint(*parts: object) -> str:
    digest = hashlib.sha256()
    for part in (__version__, _FORMAT, *parts):
        digest.update(repr(part).encode())
        digest.update(b"\0")
    return digest.hexdigest()


class ResultCache:
    def __init__(self, directory: Path, fingerprint: str) -> None:
        self.directory = directory / f"v{_FORMAT}"
        self.fingerprint = fingerprint
        self.usable = self._prepare(directory)

    def _prepare(self, root: Path) -> bool:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            ignore = root / ".gitignore"
            if not ignore.exists():
                atomic_write(ignore, "# Created by greenops-lint\n*\n", durable=False)
            return os.access(self.directory, os.W_OK)
        except OSError:
            return False

    def key(self, path: str, raw: bytes) -> str:
        digest = hashlib.sha256(self.fingerprint.encode())
        digest.update(path.encode("utf-8", "surrogateescape"))
        digest.update(b"\0")
        digest.update(raw)
        return digest.hexdigest()

    def _entry(self, key: str) -> Path:
        return self.directory / key[:2] / key

    def get(self, key: str) -> Optional[tuple[list[Finding], list[Finding]]]:
        if not self.usable:
            return None
        try:
            data = json.loads(self._entry(key).read_bytes())
            if data.get("key") != key:
                return None
            return [_finding(f) for f in data["findings"]], [_finding(f) for f in data["suppressed"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing, corrupt or foreign: recompute and rewrite

    def put(self, key: str, findings: list[Finding], suppressed: list[Finding]) -> None:
        if not self.usable:
            return
        entry = self._entry(key)
        payload = json.dumps(
            {"key": key, "findings": [_record(f) for f in findings], "suppressed": [_record(f) for f in suppressed]}
        )
        try:
            entry.parent.mkdir(exist_ok=True)
            atomic_write(entry, payload, durable=False)
        except OSError:
            self.usable = False  # read-only or full disk: lint without a cache


def _record(finding: Finding) -> dict:
    data = asdict(finding)
    if finding.estimate is not None:
        data["estimate"]["assumptions"] = list(finding.estimate.assumptions)
    return data


def _finding(data: dict) -> Finding:
    estimate = data.get("estimate")
    if estimate is not None:
        estimate = SavingsEstimate(**{**estimate, "assumptions": tuple(estimate["assumptions"])})
    return Finding(**{**data, "estimate": estimate, "noqa_lines": tuple(data["noqa_lines"])})
