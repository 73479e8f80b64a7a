"""Lint files: decode, prefilter, parse once, walk once, collect findings.

`Linter` holds the enabled rule classes and their dispatch methods, built once
per process; `lint_files` spreads files over a process pool in batches and
returns the findings in a deterministic order.
"""

from __future__ import annotations

import ast
import gc
import os
import re
import sys
import traceback
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from typing import Optional, Sequence

import libcst as cst

from greenops_lint.analysis.registry import ANALYSES, AnalysisError, unknown_analyses
from greenops_lint.analysis.training import TRAINING_TOKENS, ScriptFacts, imports_of_tree
from greenops_lint.cache import ResultCache
from greenops_lint.config import Config
from greenops_lint.context import FileContext
from greenops_lint.finding import Finding, Fix
from greenops_lint.noqa import is_suppressed, noqa_lines
from greenops_lint.parsing import collector_paused, parse_module
from greenops_lint.positions import positions_of
from greenops_lint.rule import Rule, dispatch_methods
from greenops_lint.savings import get_hardware
from greenops_lint.selection import PerFileIgnores, is_ignored
from greenops_lint.signals import default_sigterm
from greenops_lint.source import SourceError, SourceFile, decode, parse_python, read_bytes
from greenops_lint.walker import Dispatch, TreeWalk

SYNTAX_ERROR, DECODE_ERROR, INTERNAL_ERROR = "GO001", "GO002", "GO003"

# Trees are walked recursively (by this engine and by LibCST's code
# generation); 3.11+ does not use the C stack for Python-to-Python calls, so a
# higher limit only lets deep but valid files (long `a + b + ...` chains) through.
sys.setrecursionlimit(max(sys.getrecursionlimit(), 20_000))

# LibCST's parser takes time superlinear in the length of one operator chain
# (measured: 1,000 operands 0.6 s, 2,000 4.8 s, 4,000 34 s). Files that might
# hold such a chain are checked with CPython's parser first.
MAX_CHAIN = 1_000
LONG_LINE = 5000
# Two patterns, not one alternation: each then starts with a character (set)
# the regex engine can scan for, several times faster on large files.
_OPERATOR_AT_LINE_END = re.compile(r"[-+*/|&%@^][ \t]*\\?\n")
_OPERATOR_AT_LINE_START = re.compile(r"\n[ \t]*[-+*/|&%@^]")

# LibCST's tree (and its native parser's working memory) costs about 1-3 KB
# per token. Measured with `check --jobs 1` (peak RSS of the whole process): a
# 2 MB generated literal of nested float lists, 970,000 tokens, took 1.8 GB and
# 50 s; keras' numpy_test.py, the largest file of the 28-wheel real corpus at
# 125,000 tokens, 410 MB; the same grown to 138,000 tokens, 447 MB (~2.9 KB a
# token over a ~55 MB base). Above MAX_TOKENS a file is skipped with a GO002
# finding, which keeps one worker under ~460 MB. Tokens are counted as words
# and single punctuation characters (`0.5` is three; the words of strings and
# comments count too): an upper bound, cheap to take (~0.1 s a MB).
MAX_TOKENS = 140_000
_TOKEN = re.compile(r"\w+|[^\w\s]")


def _walk_methods(analysis_type: type) -> list[tuple[str, str, str]]:
    found = _WALK_METHODS.get(analysis_type)
    if found is None:
        found = _WALK_METHODS[analysis_type] = dispatch_methods(analysis_type)
    return found


_WALK_METHODS: dict[type, list[tuple[str, str, str]]] = {}


@dataclass
class FileResult:
    path: str
    findings: list[Finding] = field(default_factory=list)
    suppressed: list[Finding] = field(default_factory=list)
    # Is it a training script, what does it import (for --statistics); None
    # when the file was not analysed (unreadable, a syntax error, too large).
    script: Optional[ScriptFacts] = None
    # Fix mode only (never cached or sent between processes): the parsed module
    # and the fixes of the unsuppressed findings.
    module: Optional[cst.Module] = None
    fixes: list[tuple[Finding, Fix]] = field(default_factory=list)


class Linter:
    def __init__(
        self,
        config: Config,
        rules: dict[str, type[Rule]],
        debug: bool = False,
        unsafe_fixes: bool = False,
        collect_fixes: bool = False,
    ) -> None:
        self.config = config
        self.debug = debug
        self.unsafe_fixes = unsafe_fixes
        self.collect_fixes = collect_fixes
        self.meta = {code: cls for code, cls in rules.items() if code in (SYNTAX_ERROR, DECODE_ERROR, INTERNAL_ERROR)}
        self.rules = [cls for code, cls in rules.items() if code not in self.meta]
        self.methods = {cls: dispatch_methods(cls) for cls in self.rules}
        for cls in self.rules:
            unknown = unknown_analyses(cls.analyses)
            if unknown:
                raise ValueError(f"rule {cls.code} declares unknown analyses {unknown} (known: {sorted(ANALYSES)})")
        self.walk_fed = [name for name, spec in ANALYSES.items() if spec.walk_fed]
        self.always = [name for name, spec in ANALYSES.items() if spec.always]
        self.per_file_ignores = PerFileIgnores(config)
        self.hardware = get_hardware(config.hardware)

    # -- one file -------------------------------------------------------------
    def lint_path(self, path: str) -> FileResult:
        try:
            raw = read_bytes(path)
        except SourceError as exc:
            return self._meta_result(path, DECODE_ERROR, exc.message, exc.line, exc.column)
        return self.lint_bytes(path, raw)

    def lint_bytes(self, path: str, raw: bytes) -> FileResult:
        try:
            source = decode(path, raw)
        except SourceError as exc:
            return self._meta_result(path, DECODE_ERROR, exc.message, exc.line, exc.column)
        result = self._lint_source(path, source)
        if source.cells is not None:
            result.findings = [finding_in_cell(f, source) for f in result.findings]
            result.suppressed = [finding_in_cell(f, source) for f in result.suppressed]
            result.findings.sort(key=Finding.sort_key)
        return result

    def lint_source_for_fixes(self, path: str, source: SourceFile, text: str) -> FileResult:
        """Lint `text` (a fix round's current version of `source`), keeping the
        module and the fixes; positions stay in the virtual (notebook) lines."""
        return self._lint_source(path, replace(source, text=text))

    def _lint_source(self, path: str, source: SourceFile) -> FileResult:
        # The tree dies with `_lint_parsed`'s frame (the context's cycles are
        # broken there), before the collector is back on: it never scans it.
        with collector_paused():
            return self._lint_parsed(path, source)

    def _lint_parsed(self, path: str, source: SourceFile) -> FileResult:
        ignored = self.per_file_ignores.codes_for(path)
        rules = [
            cls
            for cls in self.rules
            if not is_ignored(cls.code, ignored) and (not cls.tokens or any(t in source.text for t in cls.tokens))
        ]
        if not rules and not any(t in source.text for t in TRAINING_TOKENS):
            # The prefilter: nothing here can match and it trains nowhere, so
            # skip the CST; CPython's own parser still checks the syntax,
            # several times faster.
            return self._syntax_check(path, source.text, ignored)
        deep = _too_deep(source.text)
        if deep is not None:
            return self._meta_result(
                path, SYNTAX_ERROR, f"syntax error: {deep.msg}", deep.lineno or 1, deep.offset or 1, ignored
            )
        problem = _too_large(source.text) or _too_complex(source.text)
        if problem:
            return self._meta_result(path, DECODE_ERROR, f"cannot analyse file: {problem}; skipped", 1, 1, ignored)
        try:
            module = parse_module(source.text)
        except cst.ParserSyntaxError as exc:
            message = str(exc.message).strip().splitlines()[0] if exc.message else "invalid syntax"
            return self._meta_result(
                path, SYNTAX_ERROR, f"syntax error: {message}", exc.raw_line, exc.raw_column + 1, ignored
            )
        except (RecursionError, MemoryError) as exc:
            return self._meta_result(
                path,
                SYNTAX_ERROR,
                f"syntax error: file too deeply nested to parse ({type(exc).__name__})",
                1,
                1,
                ignored,
            )
        except Exception as exc:  # noqa: BLE001 - a parser crash is ours, not the user's syntax error
            detail = traceback.format_exc() if self.debug else f"{type(exc).__name__}: {exc}"
            return self._meta_result(path, INTERNAL_ERROR, f"internal error in the parser: {detail}", 1, 1, ignored)
        try:
            return self._lint_module(path, module, source.text, rules, ignored)
        except RecursionError:
            return self._meta_result(
                path, INTERNAL_ERROR, "internal error: file too deeply nested to analyse", 1, 1, ignored
            )
        except Exception as exc:  # noqa: BLE001
            detail = traceback.format_exc() if self.debug else f"{type(exc).__name__}: {exc}"
            return self._meta_result(path, INTERNAL_ERROR, f"internal error: {detail}", 1, 1, ignored)

    def _lint_module(self, path, module, text, rule_classes, ignored) -> FileResult:
        ctx = FileContext(path, module, text, self.hardware)
        try:
            return self._walk_and_report(ctx, path, module, text, rule_classes)
        finally:
            ctx.release()

    def _walk_and_report(self, ctx: FileContext, path, module, text, rule_classes) -> FileResult:
        dispatch = Dispatch()
        crashes: list[tuple[Optional[Rule], BaseException]] = []
        failed: dict[str, BaseException] = {}
        rules: list[Rule] = []
        for name in self.walk_fed:
            if name in self.always or any(name in cls.analyses for cls in rule_classes):
                # Registered first, so rules see the analysis's facts up to the current node.
                analysis = ctx.analysis(name, building=True)
                for event, node_name, method in _walk_methods(type(analysis)):
                    dispatch.add(event, getattr(cst, node_name), getattr(analysis, method))
        for cls in rule_classes:
            rule = cls(ctx, self.config.options_for(cls.code))
            rules.append(rule)
            for event, node_name, method in self.methods[cls]:
                dispatch.add(event, getattr(cst, node_name), getattr(rule, method))

        def on_error(handler, exc: BaseException) -> None:
            owner = getattr(handler, "__self__", None)
            dispatch.remove_owner(owner)
            if isinstance(exc, AnalysisError):
                failed.setdefault(exc.name, exc.cause)
            elif not isinstance(owner, Rule):
                # A walk-fed analysis raised in its own handler.
                name = next((n for n in self.walk_fed if ctx._analyses.get(n) is owner), type(owner).__name__)
                ctx.failed_analyses[name] = exc
                failed.setdefault(name, exc)
            else:
                crashes.append((owner, exc))
                return
            for rule in rules:
                if any(n in rule.analyses for n in failed):
                    dispatch.remove_owner(rule)
            if isinstance(owner, Rule) and owner not in skipped:
                skipped.append(owner)

        skipped: list[Rule] = []
        TreeWalk(ctx, dispatch, on_error).run()
        result = FileResult(path, script=self._script_facts(ctx))
        for rule, exc in crashes:
            detail = "".join(traceback.format_exception(exc)) if self.debug else f"{type(exc).__name__}: {exc}"
            message = f"internal error in {rule.code} ({rule.name}): {detail}"
            result.findings.append(self._meta(path, INTERNAL_ERROR, message, 1, 1))
        for name, exc in failed.items():
            users = sorted({r.code for r in rules if name in r.analyses} | {r.code for r in skipped})
            detail = "".join(traceback.format_exception(exc)) if self.debug else f"{type(exc).__name__}: {exc}"
            message = (
                f"internal error in analysis '{name}' "
                f"(rules skipped for this file: {', '.join(users) or 'none'}): {detail}"
            )
            result.findings.append(self._meta(path, INTERNAL_ERROR, message, 1, 1))
            crashes.extend((r, exc) for r in rules if r.code in users)
        if not ctx.reports:
            return result
        if self.collect_fixes:
            result.module = module
        targets = [raw.node for raw in ctx.reports] + [
            raw.statement for raw in ctx.reports if raw.statement is not None
        ]
        positions = positions_of(module, targets, text)
        suppressions = noqa_lines(text)
        crashed = {id(rule) for rule, _ in crashes}
        for raw in ctx.reports:
            if id(raw.rule) in crashed:
                continue
            span = positions[raw.node]
            lines = (span.start.line,)
            if raw.statement is not None and raw.statement in positions:
                lines += (positions[raw.statement].start.line,)
            rule = raw.rule
            finding = Finding(
                path=path,
                line=span.start.line,
                column=span.start.column + 1,
                end_line=span.end.line,
                end_column=span.end.column + 1,
                code=rule.code,
                name=rule.name,
                family=rule.family,
                message=raw.message,
                severity=raw.severity or rule.severity,
                fixable=raw.fix is not None and (raw.fix.safe or self.unsafe_fixes),
                estimate=raw.estimate,
                noqa_lines=lines,
            )
            if is_suppressed(rule.code, lines, suppressions):
                result.suppressed.append(finding)
            else:
                result.findings.append(finding)
                if raw.fix is not None and self.collect_fixes:
                    result.fixes.append((finding, raw.fix))
        result.findings.sort(key=Finding.sort_key)
        return result

    @staticmethod
    def _script_facts(ctx: FileContext) -> Optional[ScriptFacts]:
        try:
            return ctx.analysis("training_script").facts()
        except AnalysisError:
            return None  # reported as GO003; the file counts as not analysed

    def _syntax_check(self, path: str, text: str, ignored) -> FileResult:
        try:
            tree = parse_python(text, path)
        except SyntaxError as exc:
            return self._meta_result(
                path, SYNTAX_ERROR, f"syntax error: {exc.msg}", exc.lineno or 1, exc.offset or 1, ignored
            )
        except (ValueError, RecursionError, MemoryError) as exc:
            return self._meta_result(path, SYNTAX_ERROR, f"syntax error: {exc}", 1, 1, ignored)
        # No training token: not a training script; its imports still tell
        # which scripts run the modules it imports.
        return FileResult(path, script=ScriptFacts((), imports_of_tree(tree)))

    # -- meta findings (GO001-GO003) -----------------------------------------
    def _meta(self, path: str, code: str, message: str, line: int, column: int) -> Finding:
        cls = self.meta.get(code)
        return Finding(
            path=path,
            line=line,
            column=column,
            end_line=line,
            end_column=column,
            code=code,
            name=cls.name if cls else code,
            family="core",
            message=message,
            severity="error",
        )

    def _meta_result(self, path, code, message, line, column, ignored=()) -> FileResult:
        if code not in self.meta or is_ignored(code, ignored):
            return FileResult(path)
        return FileResult(path, [self._meta(path, code, message, line, column)])


# CPython's tokenizer refuses more than 200 nested brackets; LibCST's native
# parser has no such limit and overflows its stack (a segfault, which would
# take a worker and its pool down) a few thousand levels deep.
MAX_BRACKET_DEPTH = 200
_BRACKETS = re.compile(r"[^()\[\]{}]+")


def _too_deep(text: str) -> Optional[SyntaxError]:
    """CPython's syntax error for a file nested deeper than CPython allows, or
    None. Checked before LibCST sees the file (and so in the worker)."""
    if text.count("(") + text.count("[") + text.count("{") <= MAX_BRACKET_DEPTH:
        return None
    depth = deepest = 0
    for char in _BRACKETS.sub("", text):  # brackets in strings count too: an upper bound
        if char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth = max(0, depth - 1)
    if deepest <= MAX_BRACKET_DEPTH:
        return None
    try:
        parse_python(text)
    except SyntaxError as exc:
        return exc
    except (ValueError, RecursionError, MemoryError) as exc:
        return SyntaxError(f"file too deeply nested to parse ({type(exc).__name__})")
    return None


def _too_large(text: str) -> Optional[str]:
    """Why the file is too large for LibCST's tree, or None."""
    if len(text) <= MAX_TOKENS:  # every token is at least one character
        return None
    count = sum(1 for _ in _TOKEN.finditer(text))
    if count <= MAX_TOKENS:
        return None
    return (
        f"{count:,} tokens, over the {MAX_TOKENS:,}-token limit (generated code or a data literal?): "
        f"its syntax tree would need about {count * 3 // 1024:,} MB"
    )


_CHAIN_TOO_LONG = (
    f"an expression chains more than {MAX_CHAIN} operands (generated code?), too many to parse in reasonable time"
)


def _too_complex(text: str) -> Optional[str]:
    """Why LibCST should not parse this text, or None (the common, cheap case)."""
    breaks = len(_OPERATOR_AT_LINE_END.findall(text)) + len(_OPERATOR_AT_LINE_START.findall(text))
    if breaks < MAX_CHAIN // 2 and max(map(len, text.split("\n"))) < LONG_LINE:
        return None
    try:
        tree = parse_python(text)
    except (SyntaxError, ValueError):
        return None  # LibCST reports the syntax error itself
    except (RecursionError, MemoryError):
        # CPython 3.12+ gives up building the AST of a chain a few thousand
        # operands long: far beyond what LibCST parses in reasonable time.
        return _CHAIN_TOO_LONG
    longest = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp):
            length, current = 1, node
            while isinstance(current, ast.BinOp):
                length += 1
                current = current.left if isinstance(current.left, ast.BinOp) else current.right
            longest = max(longest, length)
        elif isinstance(node, (ast.BoolOp,)):
            longest = max(longest, len(node.values))
        elif isinstance(node, ast.Compare):
            longest = max(longest, len(node.comparators) + 1)
        if longest > MAX_CHAIN:
            return _CHAIN_TOO_LONG
    return None


def finding_in_cell(finding: Finding, source: SourceFile) -> Finding:
    """`finding` (at a line of the notebook's virtual module) at its cell and
    the line and column within that cell."""
    cell, line = source.cell_position(finding.line)
    end_cell, end_line = source.cell_position(finding.end_line)
    if cell is None:
        return finding
    # Columns too are of the cell as the notebook shows it, not of its dedented text.
    column = source.cell_column(finding.line, finding.column)
    if end_cell != cell:
        end_line, end_column = line, column
    else:
        end_column = source.cell_column(finding.end_line, finding.end_column)
    return replace(finding, cell=cell, line=line, column=column, end_line=end_line, end_column=end_column)


# -- many files, in parallel, through the cache ------------------------------
_worker_linter: Optional[Linter] = None
_worker_cache: Optional[ResultCache] = None


def _init_worker(
    config: Config, rules: dict[str, type[Rule]], debug: bool, cache: Optional[ResultCache], unsafe_fixes: bool
) -> None:
    global _worker_linter, _worker_cache
    default_sigterm()
    _worker_linter = Linter(config, rules, debug, unsafe_fixes)
    _worker_cache = cache


def _lint_batch(jobs: Sequence[tuple[str, bytes, Optional[str]]]) -> list[FileResult]:
    assert _worker_linter is not None
    return [_lint_one(_worker_linter, _worker_cache, path, raw, key) for path, raw, key in jobs]


def _lint_one(linter: Linter, cache: Optional[ResultCache], path: str, raw: bytes, key: Optional[str]) -> FileResult:
    result = linter.lint_bytes(path, raw)
    # Internal errors are not cached: the next run should try again.
    if cache is not None and key is not None and not any(f.code == INTERNAL_ERROR for f in result.findings):
        cache.put(key, result.findings, result.suppressed, result.script)
    return result


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def lint_files(
    paths: Sequence[str],
    config: Config,
    rules: dict[str, type[Rule]],
    jobs: int = 1,
    debug: bool = False,
    cache: Optional[ResultCache] = None,
    unsafe_fixes: bool = False,
) -> list[FileResult]:
    """Lint `paths`; results come back in the order of `paths`."""
    results: dict[int, FileResult] = {}
    pending: list[tuple[int, str, bytes, Optional[str]]] = []
    reader = Linter(config, rules, debug, unsafe_fixes)
    for index, path in enumerate(paths):
        try:
            raw = read_bytes(path)
        except SourceError as exc:
            results[index] = reader._meta_result(path, DECODE_ERROR, exc.message, exc.line, exc.column)
            continue
        key = cache.key(path, raw) if cache is not None else None
        hit = cache.get(key) if cache is not None else None
        if hit is not None:
            results[index] = FileResult(path, *hit)
        else:
            pending.append((index, path, raw, key))
    # A pool costs ~100 ms to start; below a few dozen files one process is faster.
    if jobs <= 1 or len(pending) < 16:
        for index, path, raw, key in pending:
            results[index] = _lint_one(reader, cache, path, raw, key)
    else:
        # Largest files first, in small batches: no worker is left with one
        # big file at the end while the other idles.
        pending.sort(key=lambda job: len(job[2]), reverse=True)
        batch_size = max(1, min(16, len(pending) // (jobs * 8)))
        batches = [pending[i : i + batch_size] for i in range(0, len(pending), batch_size)]
        # Forked workers share the parent's objects; frozen, the collector
        # neither scans them nor copies their pages by touching them.
        gc.freeze()
        initargs = (config, rules, debug, cache, unsafe_fixes)
        try:
            try:
                with ProcessPoolExecutor(max_workers=jobs, initializer=_init_worker, initargs=initargs) as pool:
                    try:
                        outputs = pool.map(_lint_batch, [[(p, r, k) for _, p, r, k in batch] for batch in batches])
                        for batch, batch_results in zip(batches, outputs):
                            for (index, *_), result in zip(batch, batch_results):
                                results[index] = result
                    except (KeyboardInterrupt, SystemExit):
                        _stop_workers(pool)  # SIGTERM or Ctrl-C: no worker outlives the run
                        raise
            except BrokenProcessPool:
                # A worker died (a crash in native code): the results already in
                # are kept; the rest are linted one by one to find the culprit.
                _lint_isolated([job for job in pending if job[0] not in results], results, reader, initargs)
        finally:
            gc.unfreeze()
    return [results[i] for i in range(len(paths))]


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        try:
            process.kill()
        except (OSError, ValueError, AttributeError):
            pass
    pool.shutdown(wait=False, cancel_futures=True)


def _lint_isolated(jobs, results: dict[int, FileResult], reader: Linter, initargs) -> None:
    """Lint each job in a one-worker pool; a file that kills the worker gets a
    GO003 finding and a fresh worker takes the next file."""
    pool: Optional[ProcessPoolExecutor] = None
    try:
        for index, path, raw, key in jobs:
            if pool is None:
                pool = ProcessPoolExecutor(max_workers=1, initializer=_init_worker, initargs=initargs)
            try:
                results[index] = pool.submit(_lint_batch, [(path, raw, key)]).result()[0]
            except BrokenProcessPool:
                pool.shutdown(wait=False)
                pool = None
                results[index] = reader._meta_result(
                    path,
                    INTERNAL_ERROR,
                    "internal error: the linter's worker process died on this file (please report it); the other files were linted",
                    1,
                    1,
                )
    finally:
        if pool is not None:
            pool.shutdown()
