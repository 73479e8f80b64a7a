"""The result cache: a file's findings (and its training-script facts), keyed by its content, the effective
configuration, the tool version and the plugin set.

Entries live under `.greenops_lint_cache/` next to the configuration (like
`.ruff_cache`), one small JSON file each, written atomically (temporary file
+ `os.replace`), so two runs sharing the directory never see half an entry.
An entry that cannot be read or decoded, that has the wrong shape, or that
belongs to another key, is ignored and rewritten. The key includes the
Python version (3.11 and 3.12 parse differently). The default directory must
stay inside the project: a `.greenops_lint_cache` committed as a symbolic link
(or holding one) is refused, and the run goes on without a cache, so that a
checkout can never make `check` write outside itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Optional

from greenops_lint import __version__
from greenops_lint.analysis.training import ScriptFacts
from greenops_lint.fileio import atomic_write
from greenops_lint.finding import Finding, SavingsEstimate

CACHE_DIR_NAME = ".greenops_lint_cache"
_FORMAT = "2"  # 2: entries carry the file's training-script facts


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
    for part in (__version__, _FORMAT, sys.version, sys.implementation.cache_tag, *parts):
        digest.update(repr(part).encode())
        digest.update(b"\0")
    return digest.hexdigest()


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


class ResultCache:
    def __init__(self, directory: Path, fingerprint: str, confine: Optional[Path] = None) -> None:
        """`confine`: the directory the cache must stay inside (the project,
        for the default location); None for a `--cache-dir` the user chose."""
        self.directory = directory / f"v{_FORMAT}"
        self.fingerprint = fingerprint
        self.problem: Optional[str] = None
        self.usable = self._prepare(directory, confine)

    def _prepare(self, root: Path, confine: Optional[Path]) -> bool:
        try:
            if confine is not None and (root.is_symlink() or not _inside(root.resolve(), confine.resolve())):
                self.problem = f"{root} is a symbolic link or leads outside the project; running without the cache"
                return False
            if root.is_symlink() and not root.exists():
                self.problem = f"{root} is a broken symbolic link; running without the cache"
                return False
            self.directory.mkdir(parents=True, exist_ok=True)
            if self.directory.is_symlink() or not _inside(self.directory.resolve(), root.resolve()):
                self.problem = f"{self.directory} is a symbolic link; running without the cache"
                return False
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

    def get(self, key: str) -> Optional[tuple[list[Finding], list[Finding], Optional[ScriptFacts]]]:
        if not self.usable:
            return None
        try:
            data = json.loads(self._entry(key).read_bytes())
            if not isinstance(data, dict) or data.get("key") != key:
                return None
            return (
                [_finding(f) for f in data["findings"]],
                [_finding(f) for f in data["suppressed"]],
                _script(data["script"]),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            return None  # missing, corrupt, of the wrong shape or foreign: recompute and rewrite

    def put(self, key: str, findings: list[Finding], suppressed: list[Finding], script: Optional[ScriptFacts]) -> None:
        if not self.usable:
            return
        entry = self._entry(key)
        payload = json.dumps(
            {
                "key": key,
                "findings": [_record(f) for f in findings],
                "suppressed": [_record(f) for f in suppressed],
                "script": None if script is None else asdict(script),
            }
        )
        try:
            entry.parent.mkdir(exist_ok=True)
            if entry.parent.is_symlink():
                return  # planted: never write through it
            atomic_write(entry, payload, durable=False)
        except OSError:
            self.usable = False  # read-only or full disk: lint without a cache


def _record(finding: Finding) -> dict:
    data = asdict(finding)
    if finding.estimate is not None:
        data["estimate"]["assumptions"] = list(finding.estimate.assumptions)
    return data


_TYPES = {
    "path": str,
    "line": int,
    "column": int,
    "end_line": int,
    "end_column": int,
    "code": str,
    "name": str,
    "family": str,
    "message": str,
    "severity": str,
}


def _finding(data: dict) -> Finding:
    if not isinstance(data, dict) or any(not isinstance(data.get(k), t) for k, t in _TYPES.items()):
        raise TypeError("not a finding record")
    estimate = data.get("estimate")
    if estimate is not None:
        estimate = SavingsEstimate(**{**estimate, "assumptions": tuple(estimate["assumptions"])})
    return Finding(**{**data, "estimate": estimate, "noqa_lines": tuple(data["noqa_lines"])})


def _script(data: Optional[dict]) -> Optional[ScriptFacts]:
    if data is None:
        return None
    calls, imports = data["training_calls"], data["imports"]
    if not all(isinstance(part, list) and all(isinstance(x, str) for x in part) for part in (calls, imports)):
        raise TypeError("not a script record")
    return ScriptFacts(tuple(calls), tuple(imports))
