"""The linter as an editor sees it: a buffer's text (not the file on disk),
linted under the configuration of the project the file belongs to, exactly as
`check` would read it, through the same result cache. The language server
(`greenops_lint.server`) is a thin LSP layer over this module; nothing here
knows about LSP.
"""

from __future__ import annotations

import inspect
import io
import json
import os
import tokenize
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional, Sequence

import libcst as cst

from greenops_lint.cache import CACHE_DIR_NAME, ResultCache, code_stamp, config_fingerprint
from greenops_lint.config import Config, ConfigError, disabled_plugins, find_config_file, load_config
from greenops_lint.engine import INTERNAL_ERROR, Linter, finding_in_cell
from greenops_lint.exclusion import exclude_spec, is_excluded
from greenops_lint.finding import Finding, Fix
from greenops_lint.noqa import add_noqa_comments
from greenops_lint.plugins import RuleRegistry, load_rules
from greenops_lint.report.sarif import HELP_URI
from greenops_lint.rule import Rule
from greenops_lint.selection import enabled_rules
from greenops_lint.source import SourceError, decode

META = ("GO001", "GO002", "GO003")


@dataclass
class Project:
    """One configuration (a `pyproject.toml` with `[tool.greenops-lint]`, or none)."""

    config: Config
    registry: RuleRegistry
    rules: dict[str, type[Rule]]
    linter: Linter
    cache: Optional[ResultCache]
    stamp: tuple  # the config file's (path, mtime, size): reloaded when it changes

    def excluded(self, path: str) -> bool:
        return is_excluded(path, self.config, self._spec)

    def __post_init__(self) -> None:
        self._spec = exclude_spec(self.config)


class Projects:
    """Projects by configuration file, built on first use and rebuilt when the
    configuration file changes."""

    def __init__(self, use_cache: bool = True, cwd: Optional[Path] = None) -> None:
        self.use_cache = use_cache
        self.cwd = cwd or Path.cwd()
        self._registries: dict[tuple[str, ...], RuleRegistry] = {}
        self._projects: dict[str, Project] = {}

    def registry(self, disabled: tuple[str, ...] = ()) -> RuleRegistry:
        if disabled not in self._registries:
            self._registries[disabled] = load_rules(disabled)
        return self._registries[disabled]

    def for_path(self, path: Optional[str]) -> Project:
        """The project of `path` (None: an unsaved buffer; the working directory's).
        Raises ConfigError for an invalid configuration."""
        start = Path(path).parent if path else self.cwd
        while not start.exists() and start != start.parent:
            start = start.parent
        source = find_config_file(start.resolve())
        stamp = _stamp(source)
        key = str(source)
        project = self._projects.get(key)
        if project is not None and project.stamp == stamp:
            return project
        project = self._load(source, start.resolve(), stamp)
        self._projects[key] = project
        return project

    def _load(self, source: Optional[Path], start: Path, stamp: tuple) -> Project:
        registry = self.registry(disabled_plugins(None, start))
        option_types = {code: {n: o.type for n, o in cls.options.items()} for code, cls in registry.rules.items()}
        config = load_config(None, start, set(registry.rules), option_types)
        if source is None:
            config = config.with_overrides(root=self.cwd)
        rules = enabled_rules(registry.rules, config)
        cache = None
        if self.use_cache:
            modules = [inspect.getsourcefile(cls) or "" for cls in rules.values()]
            # The fingerprint `check` computes (debug off, no unsafe fixes): both share entries.
            fingerprint = config_fingerprint(
                config, sorted(rules), registry.plugin_names, False, False, code_stamp(modules)
            )
            cache = ResultCache(config.root / CACHE_DIR_NAME, fingerprint)
        linter = Linter(config, rules, collect_fixes=True)
        return Project(config, registry, rules, linter, cache, stamp)


def _stamp(source: Optional[Path]) -> tuple:
    if source is None:
        return (None,)
    try:
        info = source.stat()
    except OSError:
        return (str(source),)
    return (str(source), info.st_mtime_ns, info.st_size)


# -- one buffer -----------------------------------------------------------------------
@dataclass
class Analysis:
    """The findings of one version of a buffer's text."""

    path: str
    text: str
    findings: list[Finding] = field(default_factory=list)
    suppressed: list[Finding] = field(default_factory=list)
    # None when the findings came from the cache: `with_fixes` lints again.
    fixes: Optional[list[tuple[Finding, Fix]]] = None
    module: Optional[cst.Module] = None
    excluded: bool = False
    cached: bool = False


def encode_text(text: str) -> tuple[bytes, str]:
    """The bytes the file would hold: its coding cookie's encoding, else UTF-8."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(text.encode("utf-8", "surrogatepass")).readline)
    except SyntaxError:
        encoding = "utf-8"
    encoding = "utf-8" if encoding == "utf-8-sig" else encoding
    try:
        return text.encode(encoding), encoding
    except (UnicodeEncodeError, LookupError):
        return text.encode("utf-8", "surrogatepass"), "utf-8"


def lint_text(project: Project, path: str, text: str, want_fixes: bool = False) -> Analysis:
    """Lint `text` as the content of `path` (the cache answers when it can,
    unless the fixes are wanted)."""
    analysis = Analysis(path, text)
    if project.excluded(path):
        analysis.excluded = True
        analysis.fixes = []
        return analysis
    # A notebook's text is its JSON (see notebook_json), always UTF-8.
    raw = text.encode("utf-8", "surrogatepass") if path.endswith(".ipynb") else encode_text(text)[0]
    cache = project.cache
    key = cache.key(path, raw) if cache is not None else None
    if not want_fixes and cache is not None:
        hit = cache.get(key)
        if hit is not None:
            analysis.findings, analysis.suppressed, _script = hit
            analysis.findings = [f for f in analysis.findings if project.config.shows(f)]
            analysis.cached = True
            return analysis
    result = project.linter.lint_bytes(path, raw)
    analysis.findings, analysis.suppressed = result.findings, result.suppressed
    analysis.fixes, analysis.module = result.fixes, result.module
    if cache is not None and not any(f.code == INTERNAL_ERROR for f in result.findings):
        cache.put(key, result.findings, result.suppressed, result.script)
    # `min-severity`: what `check` shows, the editor shows.
    analysis.findings = [f for f in analysis.findings if project.config.shows(f)]
    return analysis


def with_fixes(project: Project, analysis: Analysis) -> Analysis:
    if analysis.fixes is not None:
        return analysis
    return lint_text(project, analysis.path, analysis.text, want_fixes=True)


def same_finding(a: Finding, b: Finding) -> bool:
    return (a.code, a.line, a.column, a.end_line, a.end_column) == (b.code, b.line, b.column, b.end_line, b.end_column)


@dataclass(frozen=True)
class TextFix:
    title: str
    safe: bool
    text: str  # the whole buffer after the fix


def fix_for(analysis: Analysis, finding: Finding) -> Optional[TextFix]:
    """The buffer with `finding`'s fix applied (needs `with_fixes` first)."""
    from greenops_lint.fixes import apply_fixes

    if analysis.module is None or not analysis.fixes:
        return None
    for candidate, fix in analysis.fixes:
        if same_finding(candidate, finding):
            try:
                new_text = apply_fixes(analysis.module, [fix])
                cst.parse_module(new_text)
            except Exception:  # noqa: BLE001 - a broken fix is not offered
                return None
            if new_text == analysis.text:
                return None
            return TextFix(fix.title, fix.safe, new_text)
    return None


def fix_all(project: Project, path: str, text: str, unsafe: bool = False) -> Optional[str]:
    """The buffer with every (safe) fix applied, as `check --fix` would write it;
    None when nothing changes."""
    from greenops_lint.fixes import fix_source

    if project.excluded(path):
        return None
    raw, encoding = encode_text(text)
    outcome = fix_source(project.linter, path, raw, unsafe)
    if not outcome.changed or outcome.error:
        return None
    return outcome.fixed.decode(encoding)


def noqa_for(text: str, finding: Finding) -> Optional[str]:
    """The buffer with `# noqa: CODE` on the line that suppresses `finding`."""
    lines = (finding.line, *[n for n in finding.noqa_lines if n != finding.line])
    for line in lines:
        new_text, changed = add_noqa_comments(text, {line: {finding.code}})
        if changed:
            return new_text
    return None


# -- notebooks: an editor's cells, linted as the .ipynb file they make -------------------
def notebook_json(cells: Sequence[Optional[str]]) -> str:
    """The JSON of a notebook (nbformat 4) holding `cells` in order: a code
    cell's text, or None for a cell that is not Python code (markdown, raw).
    `lint_text` on it with a `.ipynb` path lints the cells as `check` lints the
    file: joined, IPython syntax handled, findings at cell and line."""
    return json.dumps(
        {
            "cells": [
                {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": text}
                if text is not None
                else {"cell_type": "markdown", "metadata": {}, "source": ""}
                for text in cells
            ],
            "metadata": {},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    )


def _cell_sources(notebook_text: str) -> list[str]:
    return [cell.get("source", "") for cell in json.loads(notebook_text)["cells"]]


@dataclass(frozen=True)
class CellsFix:
    title: str
    safe: bool
    sources: dict[int, str]  # the new text of each cell it changes (1-based, as findings count cells)


def notebook_fix_for(analysis: Analysis, finding: Finding) -> Optional[CellsFix]:
    """`finding`'s fix (a finding of a notebook analysis, at its cell) as the
    cells it changes (needs `with_fixes` first)."""
    from greenops_lint.fixes import apply_fixes, notebook_cell_sources

    if analysis.module is None or not analysis.fixes:
        return None
    try:
        source = decode(analysis.path, analysis.text.encode("utf-8", "surrogatepass"))
    except SourceError:
        return None
    for candidate, fix in analysis.fixes:  # at lines of the virtual module
        placed = finding_in_cell(candidate, source)
        if placed.cell == finding.cell and same_finding(placed, finding):
            try:
                new_text = apply_fixes(analysis.module, [fix])
                cst.parse_module(new_text)
                sources = notebook_cell_sources(source, new_text)
            except Exception:  # noqa: BLE001 - a broken fix (or one that edits a magic) is not offered
                return None
            return CellsFix(fix.title, fix.safe, sources) if sources else None
    return None


def notebook_fix_all(project: Project, path: str, notebook_text: str, unsafe: bool = False) -> Optional[dict[int, str]]:
    """The cells every (safe) fix changes, as `check --fix` would write them
    into the notebook: {cell number: new text}; None when nothing changes."""
    from greenops_lint.fixes import fix_source

    if project.excluded(path):
        return None
    outcome = fix_source(project.linter, path, notebook_text.encode("utf-8", "surrogatepass"), unsafe)
    if not outcome.changed or outcome.error:
        return None
    before, after = _cell_sources(notebook_text), _cell_sources(outcome.fixed.decode("utf-8"))
    changed = {number: new for number, (old, new) in enumerate(zip(before, after), start=1) if old != new}
    return changed or None


def notebook_noqa_for(analysis: Analysis, cell_text: str, finding: Finding) -> Optional[str]:
    """The cell's text with `# noqa: CODE` on the line that suppresses
    `finding` (a finding of a notebook analysis, in this cell)."""
    try:
        source = decode(analysis.path, analysis.text.encode("utf-8", "surrogatepass"))
    except SourceError:
        return None
    # `finding.noqa_lines` count lines of the virtual module: keep those in this cell, as cell lines.
    positions = [source.cell_position(line) for line in finding.noqa_lines]
    lines = tuple(line for cell, line in positions if cell == finding.cell)
    return noqa_for(cell_text, replace(finding, noqa_lines=lines))


def hover_markdown(finding: Finding, rule: Optional[type[Rule]]) -> str:
    parts = [f"**{finding.code}** `{finding.name}`: {finding.message}"]
    estimate = finding.estimate
    if estimate is not None:
        parts.append(f"Estimate: {estimate.headline().removeprefix('est. ')} ({estimate.basis})")
        if estimate.assumptions:
            parts.append("\n".join(f"- {a}" for a in estimate.assumptions))
    if rule is not None:
        fix = rule.section("Fix")
        if fix:
            parts.append(f"Fix: {fix}")
        if rule.fixable:
            parts.append(f"Autofix: {rule.fix_safety or 'safe'}")
    parts.append(f"[{finding.code} rule page]({HELP_URI.format(code=finding.code)})")
    return "\n\n".join(parts)


def line_edit(old: str, new: str) -> tuple[int, int, str]:
    """The smallest run of whole lines of `old` to replace to get `new`:
    (first line, line after the last, replacement), 0-based."""
    a = old.splitlines(keepends=True)
    b = new.splitlines(keepends=True)
    start = 0
    while start < len(a) and start < len(b) and a[start] == b[start]:
        start += 1
    end_a, end_b = len(a), len(b)
    while end_a > start and end_b > start and a[end_a - 1] == b[end_b - 1]:
        end_a -= 1
        end_b -= 1
    return start, end_a, "".join(b[start:end_b])


def path_of_uri(uri: str) -> Optional[str]:
    from urllib.parse import unquote, urlparse

    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return None
    path = unquote(parsed.path)
    if os.name == "nt" and path.startswith("/") and len(path) > 2 and path[2] == ":":  # pragma: no cover
        path = path[1:]
    return path


__all__ = [
    "Analysis",
    "CellsFix",
    "ConfigError",
    "META",
    "Project",
    "Projects",
    "TextFix",
    "encode_text",
    "fix_all",
    "fix_for",
    "hover_markdown",
    "line_edit",
    "lint_text",
    "noqa_for",
    "notebook_fix_all",
    "notebook_fix_for",
    "notebook_json",
    "notebook_noqa_for",
    "path_of_uri",
    "same_finding",
    "with_fixes",
]
