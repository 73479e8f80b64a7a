"""Turn the paths on the command line into the files to lint.

Directories are walked recursively (symlinked directories found in the walk
are not followed, so a link loop cannot trap it; a symlinked directory named
on the command line is walked); `exclude`/`extend-exclude` patterns and
`.gitignore` files (read with `pathspec`, at every level) prune the walk.
Files named explicitly are always linted, as flake8 and ruff do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import pathspec

from greenops_lint.config import Config, ConfigError

LINTED_SUFFIXES = (".py", ".pyi", ".ipynb")


@dataclass
class Discovery:
    files: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, message)


def discover(paths: Iterable[str], config: Config) -> Discovery:
    found = Discovery()
    excludes = pathspec.GitIgnoreSpec.from_lines([*config.exclude, *config.extend_exclude])
    seen: set[str] = set()
    for arg in paths:
        try:
            os.lstat(arg)
        except FileNotFoundError:
            raise ConfigError(f"{arg}: no such file or directory") from None
        except OSError as exc:
            # One unreadable path is a finding for it; the others are still linted.
            found.problems.append((os.path.normpath(arg), f"cannot read: {exc.strerror or exc}"))
            continue
        # A directory named on the command line is walked even through a
        # symlink (the user chose it); links met during the walk are not followed.
        if os.path.isdir(arg) or arg in (".", "./"):
            for path in _walk(arg, config, excludes, found):
                if path not in seen:
                    seen.add(path)
                    found.files.append(path)
        else:
            path = os.path.normpath(arg)
            if path not in seen:
                seen.add(path)
                found.files.append(path)
    found.files.sort()
    return found


def _gitignore(directory: str) -> Optional[pathspec.PathSpec]:
    path = os.path.join(directory, ".gitignore")
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    try:
        return pathspec.GitIgnoreSpec.from_lines(lines)
    except Exception:  # noqa: BLE001 - an invalid line (a lone `\`): git ignores it, so do we
        return pathspec.GitIgnoreSpec.from_lines([line for line in lines if _valid_pattern(line)])


def _valid_pattern(line: str) -> bool:
    try:
        pathspec.GitIgnoreSpec.from_lines([line])
        return True
    except Exception:  # noqa: BLE001
        return False


def _relative_to_root(path: str, root: Path) -> Optional[str]:
    try:
        return Path(os.path.abspath(path)).relative_to(root).as_posix()
    except ValueError:
        return None


def _walk(top: str, config: Config, excludes: pathspec.PathSpec, found: Discovery):
    # Each gitignore spec applies to paths relative to the directory holding it.
    inherited: list[tuple[str, pathspec.PathSpec]] = []
    if config.respect_gitignore:
        for parent in reversed(Path(os.path.abspath(top)).parents):
            if config.root == parent or config.root in parent.parents:
                spec = _gitignore(str(parent))
                if spec:
                    inherited.append((str(parent), spec))
    yield from _walk_dir(top, config, excludes, inherited, found)


def _is_excluded(path: str, is_dir: bool, name: str, config: Config, excludes, gitignores) -> bool:
    suffix = "/" if is_dir else ""
    if excludes.match_file(name + suffix):
        return True
    relative = _relative_to_root(path, config.root)
    if relative is not None and excludes.match_file(relative + suffix):
        return True
    absolute = os.path.abspath(path)
    for base, spec in gitignores:
        rel = os.path.relpath(absolute, base).replace(os.sep, "/")
        if spec.match_file(rel + suffix):
            return True
    return False


def _walk_dir(directory: str, config: Config, excludes, gitignores, found: Discovery):
    if config.respect_gitignore:
        spec = _gitignore(directory)
        if spec:
            gitignores = [*gitignores, (os.path.abspath(directory), spec)]
    try:
        with os.scandir(directory) as entries:
            listing = sorted(entries, key=lambda e: e.name)
    except OSError as exc:
        found.problems.append((os.path.normpath(directory), f"cannot read directory: {exc.strerror or exc}"))
        return
    for entry in listing:
        path = os.path.normpath(os.path.join(directory, entry.name))
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
            is_file = entry.is_file(follow_symlinks=True)
        except OSError:
            continue
        if _is_excluded(path, is_dir, entry.name, config, excludes, gitignores):
            continue
        if is_dir:
            yield from _walk_dir(path, config, excludes, gitignores, found)
        elif is_file and entry.name.endswith(LINTED_SUFFIXES):
            yield path
