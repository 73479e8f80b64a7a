"""`check --statistics`: findings and estimates per rule and family, and, with a
workload size (`--gpu-hours`), the GPU-hours, kWh and kg CO2e a fix would save.

Every number is printed with the arithmetic that produced it so that a reader
can check it. Only time-factor estimates convert to GPU-hours: repeated work
(GO1xx) is counted in its own unit, because the seconds one load takes are not
known statically (the probe measures them).
"""

from __future__ import annotations

from collections import defaultdict

from greenops_lint.config import Config
from greenops_lint.finding import Finding, SavingsEstimate, human_bytes
from greenops_lint.savings import DEFAULT_UTILISATION, get_hardware, grid_table


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


def render_statistics(findings: list[Finding], config: Config) -> str:
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
        lines += workload_lines(findings, config)
    return "\n".join(lines) + "\n"


def workload_lines(findings: list[Finding], config: Config) -> list[str]:
    hardware = get_hardware(config.hardware)
    region = grid_table()[config.region]
    hours = config.gpu_hours or 0.0
    lines = [
        "",
        f"If every finding were fixed, for a workload of {hours:g} GPU-hours on {hardware.key} ({hardware.label}):",
    ]
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
    scripts = sorted({f.path for f in findings})
    lines.append(
        f"  training scripts: the {len(scripts)} checked file{'s' if len(scripts) != 1 else ''} with findings"
        + (f" ({', '.join(scripts[:5])}{', ...' if len(scripts) > 5 else ''})" if scripts else "")
    )
    notes = _not_converted(findings, cpu_only)
    if not whole:
        lines.append(
            "  no finding has a whole-step time estimate from a source for this hardware; nothing converts to GPU-hours"
        )
        return lines + notes
    # Per script: findings of one family overlap (their range counts once),
    # families multiply. The workload is taken to be the worst script.
    by_file: dict[str, dict[str, list[SavingsEstimate]]] = defaultdict(lambda: defaultdict(list))
    for finding in whole:
        by_file[finding.path][finding.family].append(finding.estimate)
    low = high = 1.0
    parts: list[str] = []
    for path, families in sorted(by_file.items()):
        f_low = f_high = 1.0
        f_parts = []
        for family, estimates in sorted(families.items()):
            e_low, e_high = min(e.low for e in estimates), max(e.high for e in estimates)
            f_low, f_high = f_low * e_low, f_high * e_high
            f_parts.append(f"{family} {_span(e_low, e_high)}x")
        if f_high > high or (f_high == high and f_low > low):
            low, high, parts = f_low, f_high, [f"{path}: " + " x ".join(f_parts)]
    saved = [(label, hours * (1 - 1 / factor)) for label, factor in (("low", low), ("high", high))]
    power_kw = hardware.tdp_w / 1000 * DEFAULT_UTILISATION
    lines.append(
        f"  slowdown of every step: {low:g}x (low) to {high:g}x (high), from {parts[0]}; assumptions: the "
        "workload is the script with the largest estimate, findings of one family overlap (their range counts "
        "once) and families multiply"
    )
    for label, gpu_hours in saved:
        factor = low if label == "low" else high
        kwh = gpu_hours * power_kw * config.pue
        kg = kwh * region.intensity / 1000
        lines.append(f"  [{label}] GPU time saved: {hours:g} GPU-h x (1 - 1/{factor:g}) = {gpu_hours:.1f} GPU-h")
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
