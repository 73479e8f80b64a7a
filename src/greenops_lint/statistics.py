"""`check --statistics`: findings and estimates per rule and family, and, with a
workload size (`--gpu-hours`), the GPU-hours, kWh and kg CO2e a fix would save.

Every number is printed with the arithmetic that produced it so that a reader
can check it. The workload is spread over the training scripts among the
checked files (analysis/training.py says how one is recognised), in equal
shares; findings in a module that is not a training script count in the
scripts that import it, and are listed as not converted when none does. Only time-factor estimates convert to GPU-hours: repeated work
(GO1xx) is counted in its own unit, because the seconds one load takes are not
known statically (the probe measures them).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import PurePath
from typing import Optional

from greenops_lint.analysis.training import TRAINING_CALLS, ScriptFacts
from greenops_lint.config import Config
from greenops_lint.finding import Finding, SavingsEstimate, human_bytes
from greenops_lint.savings import DEFAULT_UTILISATION, get_hardware, grid_table, hardware_table


def _span(low: float, high: float) -> str:
    return f"{low:g}" if low == high else f"{low:g}-{high:g}"


def combine_estimates(estimates: list[SavingsEstimate]) -> str:
    if not estimates:
        return "no estimate"
    metric = estimates[0].metric
    same = [e for e in estimates if e.metric == metric]
    if metric == "time_factor":
        # Findings of one kind describe overlapping waste (a float64 model and
        # its float64 batches): the range, not the product.
        scopes = sorted({("step time" if e.unit == "x" else e.unit.removeprefix("x ")) for e in same})
        return f"{_span(min(e.low for e in same), max(e.high for e in same))}x {' / '.join(scopes)}"
    if metric == "memory_bytes":
        return f"{human_bytes(sum(e.low for e in same))} memory"
    if metric == "memory_factor":
        return f"{min(e.low for e in same):g}-{max(e.high for e in same):g}{same[0].unit}"
    low, high = sum(e.low for e in same), sum(e.high for e in same)
    unit = same[0].unit
    return f"{low:g} {unit}" if low == high else f"{low:g}-{high:g} {unit}"


def render_statistics(
    findings: list[Finding], config: Config, scripts: Optional[dict[str, Optional[ScriptFacts]]] = None
) -> str:
    """`scripts`: every checked file's training-script facts, by path (None
    for a file that was not analysed)."""
    lines = ["", "Statistics:"]
    by_rule: dict[str, list[Finding]] = defaultdict(list)
    by_family: dict[str, int] = defaultdict(int)
    for finding in findings:
        by_rule[finding.code].append(finding)
        by_family[finding.family] += 1
    for code in sorted(by_rule):
        group = by_rule[code]
        estimates = [f.estimate for f in group if f.estimate]
        lines.append(f"  {code} {group[0].name:34} {len(group):5}  est. {combine_estimates(estimates)}")
    for family in sorted(by_family):
        lines.append(f"  family {family:29} {by_family[family]:5}")
    if config.gpu_hours:
        lines += workload_lines(findings, config, scripts)
    return "\n".join(lines) + "\n"


_HOW_FOUND = "whose module-level code reaches a training call, directly or through the module's functions"
_MAX_NAMES = 8


def workload_lines(
    findings: list[Finding], config: Config, scripts: Optional[dict[str, Optional[ScriptFacts]]] = None
) -> list[str]:
    """The GPU-hours, kWh and kg CO2e saved if every finding were fixed. The
    workload (`config.gpu_hours`) is spread in equal shares over the training
    scripts among the checked files (`scripts`; see analysis/training.py); a
    script saves its share x (1 - 1/its step slowdown)."""
    hardware = get_hardware(config.hardware)
    region = grid_table()[config.region]
    hours = config.gpu_hours or 0.0
    scripts = scripts if scripts is not None else {}
    lines = [
        "",
        f"If every finding were fixed, for a workload of {hours:g} GPU-hours on {hardware.key} ({hardware.label}):",
    ]
    if hardware.is_generic:
        # Its ranges span every card (a time factor from one, a power limit from
        # another): a product of the two would describe no GPU.
        gpus = [p for p in hardware_table().values() if p.kind == "gpu" and p.tdp_w and not p.is_generic]
        lines.append(
            "  not converted: GPU-hours, energy and emissions need one GPU, and the generic profile spans "
            f"{len(gpus)} GPU profiles (FP64 from 1:2 to 1:64 of FP32, power limits {min(p.tdp_w for p in gpus):g}-"
            f"{max(p.tdp_w for p in gpus):g} W); pass --hardware (`greenops-lint hardware` lists them)"
        )
        return lines
    # Only factors on the whole step ("x") convert to GPU-hours; partial ones
    # ("x data-loading time") stay in their own unit. A factor measured on CPU
    # never converts to a GPU's hours: no GPU source supports it.
    gpu = hardware.kind == "gpu"
    cpu_only = [
        f for f in findings if f.estimate and f.estimate.metric == "time_factor" and gpu and f.estimate.measured_on_cpu
    ]
    whole = [
        f
        for f in findings
        if f.estimate and f.estimate.metric == "time_factor" and f.estimate.unit == "x" and f not in cpu_only
    ]
    training = sorted(path for path, facts in scripts.items() if facts is not None and facts.is_training_script)
    notes = _not_converted(findings, cpu_only)
    if training:
        workload, unattributed = _attribute(whole, training, scripts)
        lines.append(_found_line(training, scripts))
        if unattributed:
            files = sorted({f.path for f in unattributed})
            which = (
                "1 file that is not a training script and that no training script imports"
                if len(files) == 1
                else (f"{len(files)} files that are not training scripts and that no training script imports")
            )
            notes.append(
                f"  not converted: {_count(unattributed, 'whole-step finding')} ({_codes(unattributed)}) in {which}: "
                f"{_names(files)}; which script runs that code is not known statically"
            )
    else:
        workload = defaultdict(list)
        for finding in whole:
            workload[finding.path].append(finding)
        analysed = sum(1 for facts in scripts.values() if facts is not None)
        lines.append(
            f"  training scripts: none found (no module-level code of the {analysed} analysed "
            f"file{'s' if analysed != 1 else ''} reaches a training call: {', '.join(TRAINING_CALLS)}); "
            "instead each file with a whole-step finding is taken as one"
            + (f": {_names(sorted(workload))}" if workload else "")
        )
    unanalysed = sorted(path for path, facts in scripts.items() if facts is None)
    if unanalysed:
        notes.append(
            f"  not analysed for training calls: {_names(unanalysed)} (unreadable, a syntax error, too large, or an internal error)"
        )
    if not any(workload.values()):
        lines.append(
            "  no finding has a whole-step time estimate from a source for this hardware; nothing converts to GPU-hours"
        )
        return lines + notes
    share = hours / len(workload)
    lines.append(
        f"  assumptions: the {hours:g} GPU-hours are spread over the {len(workload)} training "
        f"script{'s' if len(workload) != 1 else ''} in equal shares ({share:g} GPU-h each: how long each runs is not "
        "known statically); a script's step slowdown multiplies its families' factors, findings of one family "
        "overlap (their range counts once); a finding in a module that is not a training script counts in every "
        "training script that imports it, directly or through other checked files"
    )
    saved = {"low": 0.0, "high": 0.0}
    terms: dict[str, list[str]] = {"low": [], "high": []}
    idle = []
    for path in sorted(workload):
        script_findings = workload[path]
        if not script_findings:
            idle.append(path)
            continue
        low, high, parts = _slowdown(path, script_findings)
        bounds = []
        for label, factor in (("low", low), ("high", high)):
            gpu_hours = share * (1 - 1 / factor)
            saved[label] += gpu_hours
            terms[label].append(f"{gpu_hours:.1f}")
            bounds.append(f"{share:g} GPU-h x (1 - 1/{factor:g}) = {gpu_hours:.1f} GPU-h [{label}]")
        lines.append(f"  {path}: {' to '.join(bounds)}; slowdown {_span(low, high)}x from {parts}")
    if idle:
        each = " each" if len(idle) != 1 else ""
        lines.append(
            f"  {_names(idle)}: no whole-step finding; 0 GPU-h saved of {'their' if idle[1:] else 'its'} share ({share:g} GPU-h{each})"
        )
    power_kw = hardware.tdp_w / 1000 * DEFAULT_UTILISATION
    for label in ("low", "high"):
        gpu_hours = saved[label]
        kwh = gpu_hours * power_kw * config.pue
        kg = kwh * region.intensity / 1000
        total = (
            " + ".join(terms[label]) if len(terms[label]) <= _MAX_NAMES else f"the {len(terms[label])} savings above"
        )
        lines.append(f"  [{label}] GPU time saved: {total} = {gpu_hours:.1f} GPU-h")
        lines.append(
            f"  [{label}] energy saved: {gpu_hours:.1f} GPU-h x {hardware.tdp_w:g} W x {DEFAULT_UTILISATION:g} utilisation "
            f"x PUE {config.pue:g} = {kwh:.1f} kWh"
        )
        lines.append(
            f"  [{label}] emissions saved: {kwh:.1f} kWh x {region.intensity:g} gCO2e/kWh ({region.name}, {region.year}) "
            f"= {kg:.1f} kg CO2e"
        )
    lines.append(f"  sources: {hardware.source}; grid: {region.source}")
    if hardware.tdp_assumption:
        lines.append(f"  assumption: {hardware.tdp_assumption}")
    lines.append(
        f"  assumption: average draw is {DEFAULT_UTILISATION:g} x the board power limit; "
        "`greenops-lint probe` measures real energy where NVML or RAPL counters exist"
    )
    return lines + notes


def _slowdown(path: str, findings: list[Finding]) -> tuple[float, float, str]:
    """One script's step slowdown: findings of one family overlap (their range
    counts once), families multiply. The words name the other files involved."""
    families: dict[str, list[Finding]] = defaultdict(list)
    for finding in findings:
        families[finding.family].append(finding)
    low = high = 1.0
    parts = []
    for family, group in sorted(families.items()):
        e_low = min(f.estimate.low for f in group)
        e_high = max(f.estimate.high for f in group)
        low, high = low * e_low, high * e_high
        paths = {f.path for f in group}
        others = ", ".join(sorted(paths - {path}))
        where = f" ({'with' if path in paths else 'from'} {others})" if others else ""
        parts.append(f"{family} {_span(e_low, e_high)}x{where}")
    return low, high, " x ".join(parts)


def _attribute(
    whole: list[Finding], training: list[str], scripts: dict[str, Optional[ScriptFacts]]
) -> tuple[dict[str, list[Finding]], list[Finding]]:
    """The whole-step findings each training script runs: its own, and those
    of the modules that are not training scripts it imports (through any
    checked files); and the findings no training script runs."""
    imported = _imported_files(scripts)
    workload: dict[str, list[Finding]] = {path: [] for path in training}
    reached: dict[str, set[str]] = {}
    for script in training:
        seen, pending = {script}, [script]
        while pending:
            for target in imported.get(pending.pop(), ()):
                if target not in seen:
                    seen.add(target)
                    pending.append(target)
        reached[script] = seen - {script}
    unattributed = []
    for finding in whole:
        if finding.path in workload:
            workload[finding.path].append(finding)
            continue
        users = [script for script in training if finding.path in reached[script]]
        for script in users:
            workload[script].append(finding)
        if not users:
            unattributed.append(finding)
    return workload, unattributed


def _imported_files(scripts: dict[str, Optional[ScriptFacts]]) -> dict[str, set[str]]:
    """For each checked file, the checked files its imports name. An absolute
    import `pkg.model` names the file whose path ends in `pkg/model.py` (or
    `pkg/model/__init__.py`); of several, the one nearest the importer, and
    none when that is ambiguous. A relative import counts from the importer's
    own package. Imports are resolved between the checked files only."""
    modules: dict[str, list[tuple[tuple[str, ...], str]]] = defaultdict(list)
    for path in scripts:
        parts = _module_parts(path)
        if parts:
            modules[parts[-1]].append((parts, path))
    found: dict[str, set[str]] = {}
    for path, facts in scripts.items():
        if facts is None or not facts.imports:
            continue
        directory = PurePath(path).parts[:-1]
        targets = {_resolve(name, directory, modules) for name in facts.imports}
        found[path] = {t for t in targets if t is not None and t != path}
    return found


def _module_parts(path: str) -> tuple[str, ...]:
    pure = PurePath(path)
    if pure.suffix != ".py":
        return ()  # a notebook is not imported
    parts = tuple(p for p in pure.parts[:-1] if p not in (".", "")) + (pure.stem,)
    return parts[:-1] if pure.stem == "__init__" else parts


def _resolve(
    name: str, directory: tuple[str, ...], modules: dict[str, list[tuple[tuple[str, ...], str]]]
) -> Optional[str]:
    directory = tuple(p for p in directory if p not in (".", ""))
    dots = len(name) - len(name.lstrip("."))
    wanted = tuple(p for p in name[dots:].split(".") if p)
    if dots:
        if dots - 1 > len(directory):
            return None
        exact = directory[: len(directory) - (dots - 1)] + wanted
        return next((path for parts, path in modules.get(exact[-1], ()) if parts == exact), None) if exact else None
    if not wanted:
        return None
    candidates = [(parts, path) for parts, path in modules.get(wanted[-1], ()) if parts[-len(wanted) :] == wanted]
    if len(candidates) == 1:
        return candidates[0][1]
    # Several files could be `wanted`: the one whose root holds the importer, nearest first.
    roots = [
        (len(parts) - len(wanted), path)
        for parts, path in candidates
        if directory[: len(parts) - len(wanted)] == parts[: len(parts) - len(wanted)]
    ]
    roots.sort(reverse=True)
    if roots and (len(roots) == 1 or roots[0][0] != roots[1][0]):
        return roots[0][1]
    return None


def _found_line(training: list[str], scripts: dict[str, Optional[ScriptFacts]]) -> str:
    kinds: dict[str, int] = defaultdict(int)
    for path in training:
        for kind in scripts[path].training_calls:  # type: ignore[union-attr]
            kinds[kind] += 1
    found = ", ".join(
        f"{kind} in {count}" for kind, count in sorted(kinds.items(), key=lambda item: (-item[1], item[0]))
    )
    return (
        f"  training scripts: {len(training)} checked file{'s' if len(training) != 1 else ''} {_HOW_FOUND} "
        f"({found}): {_names(training)}"
    )


def _names(paths: list[str]) -> str:
    if len(paths) <= _MAX_NAMES:
        return ", ".join(paths)
    return f"{', '.join(paths[:_MAX_NAMES])}, ... ({len(paths) - _MAX_NAMES} more)"


def _count(findings: list[Finding], noun: str) -> str:
    return f"{len(findings)} {noun}{'s' if len(findings) != 1 else ''}"


def _codes(findings: list[Finding]) -> str:
    return ", ".join(sorted({f.code for f in findings}))


def _not_converted(findings: list[Finding], cpu_only: list[Finding]) -> list[str]:
    lines = []
    repeated = [f for f in findings if f.estimate and f.estimate.metric == "repeated_work"]
    if repeated:
        lines.append(
            f"  not converted: {len(repeated)} repeated-work finding{'s' if len(repeated) != 1 else ''} "
            f"({_codes(repeated)}); their cost per repetition is measured by the probe"
        )
    if cpu_only:
        lines.append(
            f"  not converted: {len(cpu_only)} finding{'s' if len(cpu_only) != 1 else ''} whose time factor was "
            f"measured on CPU ({_codes(cpu_only)}); no GPU source supports it"
        )
    partial = [
        f
        for f in findings
        if f.estimate and f.estimate.metric == "time_factor" and f.estimate.unit != "x" and f not in cpu_only
    ]
    if partial:
        lines.append(
            f"  not converted: {len(partial)} finding{'s' if len(partial) != 1 else ''} with a factor on part of the "
            f"step ({_codes(partial)}); the part's share of the step is not known statically"
        )
    return lines
