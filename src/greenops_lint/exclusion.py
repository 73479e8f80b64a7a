"""Is a path excluded by `exclude` / `extend-exclude`? For files named on the
command line with `--force-exclude` (pre-commit passes every changed file), for
`--stdin-filename`, the pytest plugin and the language server.

A path is excluded when it, or a directory above it (up to the project root),
matches a pattern, as the directory walk in `discovery` would have pruned it.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pathspec

from greenops_lint.config import Config


def exclude_spec(config: Config) -> pathspec.PathSpec:
    return pathspec.GitIgnoreSpec.from_lines([*config.exclude, *config.extend_exclude])


def is_excluded(path: str, config: Config, spec: pathspec.PathSpec | None = None) -> bool:
    spec = spec or exclude_spec(config)
    absolute = Path(os.path.abspath(path))
    try:
        relative = PurePosixPath(absolute.relative_to(config.root).as_posix())
    except ValueError:
        # Outside the project: judge the path as given, never the directories
        # above it (a checkout under ~/build/ is not excluded by `build`).
        relative = PurePosixPath(Path(os.path.normpath(path)).as_posix().lstrip("/"))
        if relative.parts and relative.parts[0] == "..":
            relative = PurePosixPath(absolute.name)
    parts = [p for p in relative.parts if p not in (".", "")]
    for index in range(len(parts)):
        suffix = "" if index == len(parts) - 1 else "/"
        prefix = "/".join(parts[: index + 1])
        if spec.match_file(parts[index] + suffix) or spec.match_file(prefix + suffix):
            return True
    return False
