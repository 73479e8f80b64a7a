"""The command line: `check`, `rules`, `explain`. Nothing but wiring lives here."""

from __future__ import annotations

import inspect
import json
import math
import os
import sys
from pathlib import Path
from typing import NoReturn, Optional

import click

from greenops_lint import __version__
from greenops_lint.adoption import AdoptionError, add_noqa
from greenops_lint.cache import CACHE_DIR_NAME, ResultCache, code_stamp, config_fingerprint
from greenops_lint.check_options import (
    HUMAN_FORMATS,
    STDIN,
    fix_stdin,
    fixes_summary,
    lint_stdin,
    read_stdin,
    settings_report,
    statistics_table,
    stdin_name,
    use_color,
)
from greenops_lint.config import (
    Config,
    ConfigError,
    check_hardware,
    check_output_path,
    check_region,
    check_selector,
    disabled_plugins,
    load_config,
)
from greenops_lint.discovery import Discovery, discover
from greenops_lint.docs import render_page, write_pages
from greenops_lint.engine import INTERNAL_ERROR, default_jobs, lint_files
from greenops_lint.exclusion import exclude_spec, is_excluded
from greenops_lint.fileio import WriteSkipped, atomic_write
from greenops_lint.finding import Finding
from greenops_lint.plugins import RuleRegistry, load_rules, warn
from greenops_lint.probe.plans import has_probe
from greenops_lint.report import FORMATTERS, sources
from greenops_lint.report.color import colorize
from greenops_lint.report.text import format_line
from greenops_lint.savings import grid_table, hardware_table
from greenops_lint.selection import enabled_rules
from greenops_lint.signals import EXIT_PIPE_CLOSED, exit_on_sigterm, silence_stdout, stdout_closed
from greenops_lint.statistics import render_statistics

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def _codes(values: tuple[str, ...]) -> Optional[tuple[str, ...]]:
    """`--select GO4,GO101 --select GO2` -> ('GO4', 'GO101', 'GO2'); None if not given."""
    if not values:
        return None
    return tuple(code.strip().upper() for value in values for code in value.split(",") if code.strip())


def _registry(disabled: tuple[str, ...] = ()) -> RuleRegistry:
    registry = load_rules(disabled)
    for problem in registry.plugin_errors:
        warn(problem)
    return registry


def _fail(message: str) -> "click.exceptions.Exit":
    click.echo(f"greenops-lint: error: {message}", err=True)
    return click.exceptions.Exit(EXIT_ERROR)


class _Main(click.Group):
    """Any internal error becomes a one-line message and exit 2 (a traceback
    exits 1, which CI reads as "findings"); `--debug` adds the traceback."""

    def parse_args(self, ctx, args):
        self.debug = "--debug" in args
        return super().parse_args(ctx, args)

    def invoke(self, ctx):
        exit_on_sigterm()
        try:
            try:
                return super().invoke(ctx)
            finally:
                # What is still buffered goes out here, so that a closed pipe is
                # seen below rather than in the interpreter's final flush. (The
                # language server's stdio transport closes stdout when it exits.)
                if sys.stdout is not None and not sys.stdout.closed:
                    sys.stdout.flush()
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit, KeyboardInterrupt):
            raise
        except BrokenPipeError as exc:
            if not stdout_closed():
                self._internal_error(exc)
            # `greenops-lint check | head`: the reader has all it wanted. End
            # quietly, with the status a shell shows for a program SIGPIPE ended.
            silence_stdout()
            raise click.exceptions.Exit(EXIT_PIPE_CLOSED) from None
        except Exception as exc:  # noqa: BLE001 - the top-level handler
            self._internal_error(exc)

    def _internal_error(self, exc: Exception) -> NoReturn:
        """Called in the `except` block that caught `exc`."""
        import traceback

        debug = getattr(self, "debug", False)
        if debug:
            click.echo(traceback.format_exc(), err=True, nl=False)
        detail = "" if debug else " (run with --debug for the traceback)"
        click.echo(
            f"greenops-lint: error: internal error: {type(exc).__name__}: {exc}{detail}; please report it at "
            "the project's issue tracker",
            err=True,
        )
        raise click.exceptions.Exit(EXIT_ERROR) from None


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="greenops-lint")
def main() -> None:
    """Find the code in ML projects that wastes GPU time, energy and CO2e."""


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option(
    "--output-format",
    "--format",
    "output_format",
    default="text",
    show_default=True,
    help=f"Output format: {', '.join(FORMATTERS)} (and any a plugin adds); --format is an alias.",
)
@click.option(
    "--select", multiple=True, help="Codes or prefixes to check (replaces the config's select), e.g. GO4,GO101."
)
@click.option("--extend-select", multiple=True, help="Codes or prefixes to add to the selection.")
@click.option("--ignore", multiple=True, help="Codes or prefixes to skip (added to the config's ignore).")
@click.option(
    "--config", "config_file", type=click.Path(dir_okay=True, path_type=Path), help="Read settings from this TOML file."
)
@click.option("--hardware", type=str, help="Hardware profile for estimates (`greenops-lint hardware` lists them).")
@click.option("--region", type=str, help="Grid region for CO2e (country code such as DE, US; default WORLD).")
@click.option("--pue", type=float, help="Data-centre power usage effectiveness (default 1.0).")
@click.option(
    "--gpu-hours", type=float, help="Workload size: turns estimates into GPU-hours, kWh and kg CO2e in --statistics."
)
@click.option("--statistics", is_flag=True, help="Print counts and summed estimates per rule and family.")
@click.option("--output-file", "-o", type=click.Path(dir_okay=False), help="Write the report to this file.")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are findings.")
@click.option("--quiet", "-q", is_flag=True, help="Print no summary line.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), help="Worker processes (default: the CPUs available).")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the result cache.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help=f"Cache directory (default: {CACHE_DIR_NAME}/ next to the config).",
)
@click.option("--fix", is_flag=True, help="Apply safe fixes in place.")
@click.option(
    "--unsafe-fixes",
    is_flag=True,
    help="Also apply (with --fix or --diff) and mark as fixable the fixes that may change numerics or behaviour.",
)
@click.option(
    "--diff",
    is_flag=True,
    help="Print the fixes as a unified diff; write nothing (exit 1 when there would be changes).",
)
@click.option(
    "--add-noqa",
    is_flag=True,
    help="Add `# noqa: CODE` to every line with a finding (adopt the linter, block new waste).",
)
@click.option("--show-suppressed", is_flag=True, help="Also list the findings that noqa comments hide.")
@click.option(
    "--show-info",
    is_flag=True,
    help="Also show info findings (below their rule's materiality threshold, or advisory); same as --min-severity info.",
)
@click.option(
    "--min-severity",
    type=click.Choice(["info", "warning", "error"]),
    help="Show findings at or above this severity (default: the config's min-severity, else warning).",
)
@click.option("--disable-plugin", multiple=True, help="Do not load this rule-pack plugin (by entry-point name).")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
@click.option(
    "--stdin-filename",
    type=str,
    help="With `check -`: the path of the code read from stdin (for the configuration, per-file-ignores and the output).",
)
@click.option(
    "--force-exclude",
    is_flag=True,
    help="Apply exclude / extend-exclude to files named on the command line too (for pre-commit).",
)
@click.option(
    "--color",
    "color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Colour the text, concise and full formats (auto: on a terminal, unless NO_COLOR is set).",
)
@click.option(
    "--exit-non-zero-on-fix",
    is_flag=True,
    help="With --fix: exit 1 when files were changed, even if no finding is left.",
)
@click.option("--show-fixes", is_flag=True, help="With --fix: list what was fixed, per file and rule.")
@click.option("--show-settings", is_flag=True, help="Print the resolved settings and the enabled rules, then exit.")
def check(
    paths,
    output_format,
    select,
    extend_select,
    ignore,
    config_file,
    hardware,
    region,
    pue,
    gpu_hours,
    statistics,
    output_file,
    exit_zero,
    quiet,
    jobs,
    no_cache,
    cache_dir,
    fix,
    unsafe_fixes,
    diff,
    add_noqa,
    show_suppressed,
    show_info,
    min_severity,
    disable_plugin,
    debug,
    stdin_filename,
    force_exclude,
    color,
    exit_non_zero_on_fix,
    show_fixes,
    show_settings,
):
    """Lint PATHS (files or directories; default: the current directory; `-`: stdin)."""
    paths = paths or (".",)
    from_stdin = paths == (STDIN,)
    if from_stdin and add_noqa:
        raise _fail("--add-noqa cannot edit stdin")
    if STDIN in paths and not from_stdin:
        raise _fail("`-` (stdin) cannot be combined with other paths")
    name = stdin_name(stdin_filename) if from_stdin else None
    try:
        check_output_path(output_file, "--output-file")
        config_paths = (stdin_filename or ".",) if from_stdin else paths
        first = Path(config_paths[0])
        disabled = disabled_plugins(config_file, _existing(first).resolve())
        registry = _registry(disabled + tuple(disable_plugin))
        formatters = {**FORMATTERS, **registry.formatters}
        if output_format not in formatters:
            raise ConfigError(f"--format: unknown format {output_format!r}; valid: {', '.join(formatters)}")
        config = _effective_config(registry, config_paths, config_file, select, extend_select, ignore, hardware)
        config = _workload_overrides(config, region, pue, gpu_hours)
        config = config.with_overrides(min_severity="info" if show_info else min_severity)
        found = Discovery(files=[name]) if from_stdin else discover(paths, config)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    if force_exclude:
        spec = exclude_spec(config)
        found.files = [f for f in found.files if not (f != STDIN and is_excluded(f, config, spec))]
    rules = enabled_rules(registry.rules, config)
    if show_settings:
        click.echo(settings_report(config, rules, found.files), nl=False)
        return
    if from_stdin:
        raw = read_stdin()
        sources.register(name, raw.decode("utf-8", "replace"))
        if not found.files:  # excluded: pass the code through untouched
            if fix:
                _write_bytes(raw)
            raise SystemExit(EXIT_CLEAN)
    if from_stdin and (fix or diff):
        outcome = fix_stdin(raw, name, config, rules, unsafe_fixes)
        if diff:
            click.echo(outcome.diff(), nl=False)
            raise SystemExit(EXIT_ERROR if outcome.error else EXIT_FINDINGS if outcome.changed else EXIT_CLEAN)
        _write_bytes(outcome.fixed if outcome.changed else raw)
        left = [f for f in outcome.result.findings if config.shows(f)]
        if left and not quiet:
            click.echo(formatters["text"](left, registry.rules), nl=False, err=True)
        if show_fixes:
            click.echo(fixes_summary([outcome]), nl=False, err=True)
        if outcome.error:
            click.echo(f"greenops-lint: error: {name}: {outcome.error}", err=True)
            raise SystemExit(EXIT_ERROR)
        changed = outcome.changed and exit_non_zero_on_fix
        raise SystemExit(EXIT_FINDINGS if (left and not exit_zero) or changed else EXIT_CLEAN)
    changed_files = 0
    if fix or diff:
        outcomes = _fix(found.files, config, rules, unsafe_fixes, write=not diff, quiet=quiet)
        results = [o.result for o in outcomes]
        changed_files = sum(1 for o in outcomes if o.changed)
        if show_fixes:
            click.echo(fixes_summary(outcomes), nl=False, err=True)
    elif from_stdin:
        results = [lint_stdin(raw, name, config, rules, debug, unsafe_fixes)]
    else:
        cache = None
        if not no_cache:
            modules = [inspect.getsourcefile(cls) or "" for cls in rules.values()]
            fingerprint = config_fingerprint(
                config, sorted(rules), registry.plugin_names, debug, unsafe_fixes, code_stamp(modules)
            )
            cache = ResultCache(
                cache_dir or config.root / CACHE_DIR_NAME, fingerprint, None if cache_dir else config.root
            )
            if cache.problem:
                click.echo(f"greenops-lint: warning: {cache.problem}", err=True)
        results = lint_files(found.files, config, rules, jobs or default_jobs(), debug, cache, unsafe_fixes)
    if add_noqa:
        _add_noqa(results, config, quiet)
        return
    findings: list[Finding] = [f for r in results for f in r.findings]
    for directory, problem in found.problems:
        findings.append(Finding(directory, 1, 1, 1, 1, "GO002", "unreadable-file", "core", problem, "error"))
    findings.sort(key=Finding.sort_key)
    below = [f for f in findings if not config.shows(f)]
    findings = [f for f in findings if config.shows(f)]
    suppressed = sorted((f for r in results for f in r.suppressed), key=Finding.sort_key)
    human = output_format in HUMAN_FORMATS
    scripts = {r.path: r.script for r in results}
    if statistics and (human or output_format == "json"):
        # ruff's table instead of the findings, then the estimates and their arithmetic.
        report = statistics_table(findings, registry.rules, output_format)
        if human:
            report += render_statistics(findings, config, scripts)
    else:
        report = formatters[output_format](findings, registry.rules)
        if show_suppressed and suppressed:
            report += _suppressed_report(suppressed, output_format, formatters, registry)
    if human and use_color(color, bool(output_file)):
        report = colorize(report)
    if output_file:
        atomic_write(output_file, report)
    else:
        click.echo(report, nl=False, color=True if human and color != "never" else None)
    if statistics and not human and (output_format != "json" or config.gpu_hours):
        # Machine-readable stdout stays one document: the estimates and the
        # GPU-hours arithmetic go to stderr (to stdout when the report has --output-file).
        click.echo(render_statistics(findings, config, scripts), nl=False, err=not output_file)
    if not quiet:
        _summary(findings, len(found.files), len(suppressed), len(below), config.min_severity)
    if any(f.code == INTERNAL_ERROR for f in findings):
        raise SystemExit(EXIT_ERROR)
    if exit_non_zero_on_fix and changed_files:
        raise SystemExit(EXIT_FINDINGS)
    raise SystemExit(EXIT_FINDINGS if findings and not exit_zero else EXIT_CLEAN)


def _fix(files, config, rules, unsafe: bool, write: bool, quiet: bool):
    from greenops_lint.fixes import fix_paths

    outcomes = fix_paths(files, config, rules, unsafe, write=write)
    if not write:
        changed = [o for o in outcomes if o.changed]
        for outcome in changed:
            click.echo(outcome.diff(), nl=False)
        for outcome in outcomes:
            if outcome.error:
                click.echo(f"greenops-lint: error: {outcome.path}: {outcome.error}", err=True)
        if not quiet:
            fixes = sum(len(o.applied) for o in changed)
            click.echo(
                f"Would fix {fixes} finding{'s' if fixes != 1 else ''} in {len(changed)} file{'s' if len(changed) != 1 else ''}"
                f"{_hidden_unsafe(outcomes)}.",
                err=True,
            )
        raise SystemExit(EXIT_ERROR if any(o.error for o in outcomes) else EXIT_FINDINGS if changed else EXIT_CLEAN)
    for outcome in outcomes:
        if outcome.skipped_precision and not quiet:
            click.echo(
                f"greenops-lint: {outcome.path}: float64 fixes left out: float64 data would remain in the file "
                "(a dtype mismatch); change the remaining float64 sources by hand, then run --fix again",
                err=True,
            )
    fixed = sum(len(o.applied) for o in outcomes if o.changed)
    if not quiet and fixed:
        files = sum(1 for o in outcomes if o.changed)
        click.echo(
            f"Fixed {fixed} finding{'s' if fixed != 1 else ''} in {files} file{'s' if files != 1 else ''}"
            f"{_hidden_unsafe(outcomes)}.",
            err=True,
        )
    elif not quiet and _hidden_unsafe(outcomes):
        click.echo(f"No safe fixes{_hidden_unsafe(outcomes)}.", err=True)
    return outcomes


def _hidden_unsafe(outcomes) -> str:
    """ruff's hint: fixes left out because they need --unsafe-fixes."""
    hidden = sum(o.hidden_unsafe for o in outcomes)
    if not hidden:
        return ""
    return f" ({hidden} unsafe fix{'es' if hidden != 1 else ''} can be applied with --unsafe-fixes)"


def _suppressed_report(suppressed, output_format, formatters, registry) -> str:
    if output_format == "text":
        return "".join(f"{format_line(f)} [suppressed by noqa]\n" for f in suppressed)
    click.echo(f"{len(suppressed)} findings are suppressed by noqa comments (shown in text format only)", err=True)
    return ""


def _add_noqa(results, config, quiet: bool) -> None:
    """Suppress what `check` shows: findings below `min-severity` (hidden) get no comment."""
    lines = files = 0
    failed = False
    for result in results:
        shown = [f for f in result.findings if config.shows(f)]
        if not shown:
            continue
        try:
            changed = add_noqa(result.path, shown)
        except WriteSkipped as exc:
            click.echo(f"greenops-lint: error: {result.path}: --add-noqa skipped this file: {exc}", err=True)
            failed = True
            continue
        except (AdoptionError, OSError, ValueError) as exc:
            click.echo(f"greenops-lint: error: {exc}", err=True)
            failed = True
            continue
        if changed:
            lines += changed
            files += 1
    if not quiet:
        click.echo(
            f"Added noqa comments to {lines} line{'s' if lines != 1 else ''} in {files} file{'s' if files != 1 else ''}.",
            err=True,
        )
    raise SystemExit(EXIT_ERROR if failed else EXIT_CLEAN)


def _effective_config(registry, paths, config_file, select, extend_select, ignore, hardware) -> Config:
    known = set(registry.rules)
    option_types = {code: {name: o.type for name, o in cls.options.items()} for code, cls in registry.rules.items()}
    config = load_config(config_file, _existing(Path(paths[0])).resolve(), known, option_types)
    overrides = {"select": _codes(select), "extend_select": _codes(extend_select)}
    for option, codes in (
        ("--select", overrides["select"]),
        ("--extend-select", overrides["extend_select"]),
        ("--ignore", _codes(ignore)),
    ):
        for code in codes or ():
            check_selector(code, known, option)
    if overrides["extend_select"]:
        overrides["extend_select"] = config.extend_select + overrides["extend_select"]
    ignore_codes = _codes(ignore)
    if ignore_codes:
        overrides["ignore"] = config.ignore + ignore_codes
    if hardware is not None:
        overrides["hardware"] = check_hardware(hardware, "--hardware")
    return config.with_overrides(**overrides)


def _write_bytes(data: bytes) -> None:
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _existing(path: Path) -> Path:
    """`path`, or its nearest existing parent (a `--stdin-filename` need not exist)."""
    for candidate in (path, *path.parents):
        if os.path.exists(candidate) and str(candidate) not in ("", "."):
            return candidate
    return Path.cwd()


def _workload_overrides(config: Config, region, pue, gpu_hours) -> Config:
    overrides = {}
    if region is not None:
        overrides["region"] = check_region(region, "--region")
    if pue is not None:
        if not math.isfinite(pue) or pue < 1:
            raise ConfigError(f"--pue must be >= 1.0, not {pue:g}")
        overrides["pue"] = pue
    if gpu_hours is not None:
        if not math.isfinite(gpu_hours) or gpu_hours <= 0:
            raise ConfigError(f"--gpu-hours must be positive, not {gpu_hours:g}")
        overrides["gpu_hours"] = gpu_hours
    return config.with_overrides(**overrides)


def _summary(findings: list[Finding], checked: int, suppressed: int = 0, below: int = 0, threshold: str = "") -> None:
    files = len({f.path for f in findings})
    noun = "file" if checked == 1 else "files"
    hidden = f"; {suppressed} suppressed by noqa" if suppressed else ""
    if below:
        hidden += f"; {below} below {threshold} severity hidden, --show-info shows them"
    if findings:
        click.echo(
            f"Found {len(findings)} finding{'s' if len(findings) != 1 else ''} in {files} "
            f"file{'s' if files != 1 else ''} ({checked} {noun} checked{hidden}).",
            err=True,
        )
    else:
        click.echo(f"No findings ({checked} {noun} checked{hidden}).", err=True)


@main.command(name="rules")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option(
    "--write-docs",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write one Markdown page per rule into this directory.",
)
@click.option(
    "--check-docs",
    type=click.Path(file_okay=False, path_type=Path),
    help="Exit 1 if a page in this directory is missing or stale.",
)
def rules_command(output_format, write_docs, check_docs):
    """List every rule: code, name, family, default, fixable."""
    registry = _registry()
    if write_docs is not None:
        for path in write_pages(registry.rules, write_docs):
            click.echo(f"wrote {path}", err=True)
        return
    if check_docs is not None:
        stale = [
            code
            for code, rule in registry.rules.items()
            if not (check_docs / f"{code}.md").is_file()
            or (check_docs / f"{code}.md").read_text(encoding="utf-8") != render_page(rule)
        ]
        if stale:
            click.echo(
                f"stale or missing rule pages: {', '.join(stale)} (run `greenops-lint rules --write-docs {check_docs}`)",
                err=True,
            )
            raise SystemExit(EXIT_FINDINGS)
        return
    rows = [
        {
            "code": rule.code,
            "name": rule.name,
            "family": rule.family,
            "summary": rule.summary(),
            "default": rule.default_enabled,
            "fixable": rule.fixable,
            "fix_safety": rule.fix_safety or None,
            "estimate": bool(rule.section("Estimate")),
            "probe": has_probe(rule),
        }
        for rule in registry.rules.values()
    ]
    if output_format == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        flags = ("on " if row["default"] else "off") + (" fix" if row["fixable"] else "    ")
        click.echo(f"{row['code']:7} {row['name']:32} {row['family']:13} {flags}  {row['summary']}")


@main.command()
@click.argument("code", metavar="CODE|NAME")
def explain(code):
    """Print the page of the rule CODE or name (what, why, example, fix, estimate)."""
    registry = _registry()
    rule = registry.rules.get(code.upper()) or next(
        (r for r in registry.rules.values() if r.name == code.lower()), None
    )
    if rule is None:
        raise _fail(f"unknown rule code or name '{code}'; `greenops-lint rules` lists them")
    click.echo(render_page(rule), nl=False)


@main.command()
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
def hardware(output_format):
    """List the hardware profiles and grid regions the savings model knows."""
    profiles = {key: p for key, p in hardware_table().items() if not p.internal}
    if output_format == "json":
        click.echo(
            json.dumps(
                {
                    "hardware": {k: vars(p) for k, p in profiles.items()},
                    "regions": {k: vars(r) for k, r in grid_table().items()},
                },
                indent=2,
            )
        )
        return
    click.echo("hardware (--hardware / hardware = ...):")
    for key, p in profiles.items():
        bf16 = f"{p.bf16:g}" if p.bf16 else "n/a"  # 0 in the table: no BF16 support
        figures = (
            f"FP64 {p.fp64:g} / FP32 {p.fp32:g} / BF16 {bf16} TFLOPS, {p.tdp_w:g} W"
            if p.fp32
            else "range over the GPU profiles"
        )
        click.echo(f"  {key:16} {p.label:44} {figures}")
    click.echo("regions (--region / region = ...), gCO2e/kWh:")
    for key, r in grid_table().items():
        click.echo(f"  {key:6} {r.intensity:5g}  {r.name} ({r.year})")


@main.command()
def server():
    """Run the language server over stdio (for editors; needs the `lsp` extra: pip install 'greenops-lint[lsp]')."""
    try:
        from greenops_lint.server import serve
    except ImportError as exc:
        raise _fail(
            f"the language server needs pygls ({exc}); install it with: pip install 'greenops-lint[lsp]'"
        ) from None
    serve()


def _register_probe() -> None:
    # The probe lives in its own package; torch is imported only when it runs.
    from greenops_lint.probe.cli import probe

    main.add_command(probe)


_register_probe()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
