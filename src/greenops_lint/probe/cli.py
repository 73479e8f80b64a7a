"""`greenops-lint probe`: measure what findings really cost, before and after the fix."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Optional

import click

from greenops_lint.config import ConfigError, check_output_path
from greenops_lint.probe.stats import DEFAULT_TOLERANCE

EXIT_OK, EXIT_ERROR = 0, 2
TEMPLATE_TIMEOUT_S = 120.0
RUN_TIMEOUT_S = 600.0


def _fail(message: str) -> "click.exceptions.Exit":
    click.echo(f"greenops-lint: error: {message}", err=True)
    return click.exceptions.Exit(EXIT_ERROR)


def torch_available() -> bool:
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def _codes(values: tuple[str, ...]) -> Optional[list[str]]:
    codes = [c.strip().upper() for v in values for c in v.split(",") if c.strip()]
    return codes or None


def _emit(text: str, output_file: Optional[str]) -> None:
    if output_file:
        with open(output_file, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        click.echo(text, nl=False)


class _Progress:
    """click's progress bar on stderr when it is a terminal; silent otherwise."""

    def __init__(self, total: int, label: str) -> None:
        self.bar = None
        if total > 0 and sys.stderr.isatty():
            self.bar = click.progressbar(length=total, label=label, file=sys.stderr, show_eta=True)
            self.bar.__enter__()

    def tick(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--rule", "rule_codes", multiple=True, help="Probe only these codes (e.g. GO402,GO101).")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option(
    "--repeats",
    type=click.IntRange(1, 100),
    default=4,
    show_default=True,
    help="Processes per variant, interleaved A B B A (--run: runs of the command per variant).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=None,
    help=f"Seconds one variant may run before it is stopped with its children (default {TEMPLATE_TIMEOUT_S:g}; --run {RUN_TIMEOUT_S:g}).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Intra-op threads of the micro-benchmarks (1 is the stable choice on shared hosts).",
)
@click.option(
    "--min-time",
    type=click.FloatRange(min=0.01),
    default=0.5,
    show_default=True,
    help="Measured seconds per variant process (energy windows are at least 1 s).",
)
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0.0),
    default=DEFAULT_TOLERANCE,
    show_default=True,
    help="How far outside the estimated range an interval may lie and still confirm it (0.25 = 25%).",
)
@click.option(
    "--plot",
    "plot_file",
    type=click.Path(dir_okay=False),
    help="Draw before/after per finding into this PNG (needs matplotlib).",
)
@click.option(
    "--run",
    "run_command",
    type=str,
    help='Run this command as it is and with the fixes applied, on temporary copies of the project, e.g. "python train.py --max-steps 50".',
)
@click.option(
    "--cwd",
    type=click.Path(file_okay=False, exists=True),
    help="The project directory --run copies and runs in (default: the current directory).",
)
@click.option(
    "--unsafe-fixes/--safe-fixes-only",
    default=True,
    show_default=True,
    help="--run: apply unsafe fixes too (they change numerics; only the temporary copy is changed).",
)
@click.option(
    "--config", "config_file", type=click.Path(dir_okay=True, path_type=Path), help="Read settings from this TOML file."
)
@click.option("--output-file", "-o", type=click.Path(dir_okay=False), help="Write the report to this file.")
def probe(
    paths,
    rule_codes,
    output_format,
    repeats,
    timeout,
    threads,
    min_time,
    tolerance,
    plot_file,
    run_command,
    cwd,
    unsafe_fixes,
    config_file,
    output_file,
):
    """Measure the real cost of findings: a before/after micro-benchmark per
    finding (or your own command with --run), with a verdict on each estimate:
    confirmed, refuted or inconclusive."""
    try:
        check_output_path(output_file, "--output-file")
        check_output_path(plot_file, "--plot")
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    if plot_file:
        from greenops_lint.probe.plot import PLOT_HINT, matplotlib_missing

        if matplotlib_missing():
            raise _fail(f"--plot needs matplotlib, which is not installed: {PLOT_HINT}")
    codes = _codes(rule_codes)
    if run_command is not None:
        from greenops_lint.probe.script import RunError, run_mode

        try:
            records = run_mode(
                command=run_command,
                cwd=cwd or ".",
                paths=list(paths),
                codes=codes,
                repeats=repeats,
                timeout=timeout or RUN_TIMEOUT_S,
                tolerance=tolerance,
                unsafe=unsafe_fixes,
                config_file=config_file,
                progress=_Progress,
            )
        except (RunError, ConfigError) as exc:
            raise _fail(str(exc)) from None
        _finish(records, output_format, output_file, plot_file)
        return
    if cwd:
        raise _fail("--cwd goes with --run")
    if not torch_available():
        from greenops_lint.probe.server import INSTALL_HINT

        raise _fail(f"the probe needs torch, which is not installed: {INSTALL_HINT}")
    records, failed, unprobed = _template_mode(
        paths or (".",), codes, repeats, timeout or TEMPLATE_TIMEOUT_S, threads, min_time, tolerance, config_file
    )
    _finish(records, output_format, output_file, plot_file)
    if unprobed:
        from greenops_lint.probe.plans import PROBED_CODES

        counts = ", ".join(f"{code} x{count}" for code, count in sorted(unprobed.items()))
        click.echo(
            f"Not probed: {sum(unprobed.values())} findings of rules without a probe ({counts}); "
            f"probes exist for {', '.join(PROBED_CODES)}.",
            err=True,
        )
    timed_out = [r for r in records if r.get("timed_out")]
    for record in timed_out:
        click.echo(
            f"greenops-lint: error: {record['path']}:{record['line']} {record['code']}: {record['reason']}", err=True
        )
    for record in failed:
        click.echo(
            f"greenops-lint: error: {record['path']}:{record['line']} {record['code']}: {record['reason']}", err=True
        )
    if timed_out or failed:
        raise click.exceptions.Exit(EXIT_ERROR)


def _finish(records: list[dict], output_format: str, output_file: Optional[str], plot_file: Optional[str]) -> None:
    from greenops_lint.probe.report import render_json, render_text, summary

    _emit(render_json(records) if output_format == "json" else render_text(records), output_file)
    if plot_file and records:
        from greenops_lint.probe.plot import plot

        plot(records, plot_file)
        click.echo(f"wrote {plot_file}", err=True)
    click.echo(summary(records) if records else "No findings with a probe.", err=True)


def _template_mode(paths, codes, repeats, timeout, threads, min_time, tolerance, config_file):
    from greenops_lint.plugins import load_rules
    from greenops_lint.probe.plans import PROBED_CODES
    from greenops_lint.probe.runner import (
        analyse,
        collect_findings,
        describe_host,
        detect_host,
        execute,
        load_project,
        plan_key,
        plans_for,
        steps_of,
    )
    from greenops_lint.probe.server import ProbeError, discard_shared, shared_server

    for path in paths:
        if not os.path.exists(path):
            raise _fail(f"{path}: no such file or directory")
    if codes:
        known = load_rules().rules
        for code in codes:
            if code not in known:
                raise _fail(f"unknown rule code '{code}'")
            if code not in PROBED_CODES:
                raise _fail(f"{code} has no probe; probes exist for {', '.join(PROBED_CODES)}")
    try:
        config, rules, _ = load_project(paths, config_file, codes)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    workdir = tempfile.mkdtemp(prefix="greenops-probe-")
    try:
        try:
            server = shared_server(threads)
            host, info = detect_host(server, threads, workdir)
            found = collect_findings(paths, config, rules, host.profile)
        except ProbeError as exc:
            raise _fail(str(exc)) from None
        except ConfigError as exc:
            raise _fail(str(exc)) from None
        words = describe_host(host, info)
        plans = plans_for(found, host)
        unprobed = Counter(f.code for f in found.findings if f.code not in PROBED_CODES)
        # Findings whose plans are identical (two casts in one script) share one measurement.
        shared: dict[str, list] = {}
        for plan in plans:
            shared.setdefault(plan_key(plan), []).append(plan)
        progress = _Progress(sum(steps_of(group[0], repeats) for group in shared.values()), "probing")
        outcomes: dict[str, object] = {}
        records, failed = [], []
        try:
            for plan in plans:
                key = plan_key(plan)
                if key not in outcomes:
                    try:
                        outcomes[key] = execute(plan, server, host, repeats, timeout, min_time, progress.tick)
                    except ProbeError as exc:
                        discard_shared(server)
                        raise _fail(str(exc)) from None
                outcome = outcomes[key]
                configured = found.configured.get(
                    (plan.finding.path, plan.finding.line, plan.finding.column, plan.finding.code)
                )
                if len(shared[key]) > 1:
                    others = [f"{p.finding.code} line {p.finding.line}" for p in shared[key] if p is not plan]
                    plan.notes.append(f"one measurement shared with {', '.join(others)} (the same template and sizes)")
                record = analyse(plan, outcome, host, words, tolerance, configured)
                records.append(record)
                if outcome.problem and " failed: " in outcome.problem:
                    failed.append(record)
        finally:
            progress.close()
        return records, failed, unprobed
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
