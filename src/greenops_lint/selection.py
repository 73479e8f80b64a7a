"""Which rules run: select / extend-select / ignore / per-file-ignores, ruff style.

The most specific selector wins: with `select = ["GO401"]` and
`ignore = ["GO4"]`, GO401 runs. A rule that is off by default runs only when a
selector names its full code, or `ALL` is selected (as in ruff); `DEFAULT` (the
default selection) is every rule that is on by default.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Iterable, Optional

import pathspec

from greenops_lint.config import Config
from greenops_lint.rule import Rule


def _longest_match(code: str, selectors: Iterable[str]) -> int:
    best = -1
    for selector in selectors:
        if selector == "ALL" or selector == "DEFAULT":
            best = max(best, 0)
        elif code.startswith(selector):
            best = max(best, len(selector))
    return best


def is_enabled(rule: type[Rule], select: Iterable[str], ignore: Iterable[str]) -> bool:
    select = tuple(select)
    chosen = _longest_match(rule.code, select)
    if chosen < 0:
        return False
    if not rule.default_enabled and rule.code not in select and "ALL" not in select:
        return False
    return chosen > _longest_match(rule.code, ignore)


def enabled_rules(rules: dict[str, type[Rule]], config: Config) -> dict[str, type[Rule]]:
    select = tuple(config.select) + tuple(config.extend_select) + ("GO00",)
    return {code: cls for code, cls in rules.items() if is_enabled(cls, select, config.ignore)}


class PerFileIgnores:
    def __init__(self, config: Config) -> None:
        self.root = config.root
        self.entries = [
            (pathspec.GitIgnoreSpec.from_lines([pattern]), codes) for pattern, codes in config.per_file_ignores
        ]

    def codes_for(self, path: str) -> tuple[str, ...]:
        if not self.entries:
            return ()
        relative = relative_posix(path, self.root)
        ignored: list[str] = []
        for spec, codes in self.entries:
            if spec.match_file(relative):
                ignored.extend(codes)
        return tuple(ignored)


def relative_posix(path: str, root) -> str:
    from pathlib import Path

    absolute = Path(path).resolve()
    try:
        return absolute.relative_to(root).as_posix()
    except ValueError:
        return PurePosixPath(Path(path).as_posix()).as_posix().lstrip("./")


def is_ignored(code: str, ignored: tuple[str, ...]) -> bool:
    return any(code.startswith(selector) or selector == "ALL" for selector in ignored)


def matches_any(code: str, selectors: Optional[set[str]]) -> bool:
    return selectors is None or any(code.startswith(s) for s in selectors)
