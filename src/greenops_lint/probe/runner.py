"""Run the plans: variants interleaved A B B A in fresh processes, then the figures.

`collect_findings` lints the paths twice: with the user's configuration (the
estimate they saw) and with the profile of the detected hardware (the
estimate the probe can check here: a CPU run never confirms a GPU estimate).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from greenops_lint.config import Config, load_config
from greenops_lint.discovery import discover
from greenops_lint.engine import Linter
from greenops_lint.finding import Finding
from greenops_lint.plugins import load_rules
from greenops_lint.probe import stats
from greenops_lint.probe.host import LoadMonitor, cpu_profile_key, profile_for_cuda_name, usable_cpus
from greenops_lint.probe.plans import PROBED_CODES, Host, Plan, SourceIndex, make_plan
from greenops_lint.probe.server import ProbeServer
from greenops_lint.savings import DEFAULT_UTILISATION, get_hardware
from greenops_lint.selection import enabled_rules

CPU_ONLY_BENCHES = frozenset({"ddp", "workers", "threads", "repeated_load", "make_file"})
# Cores behind a CPU profile's TDP, for the labelled TDP-share energy estimate.
_PROFILE_CORES = {"cloud-vcpu-2": 2, "x86-server-cpu": 96}


# -- findings ------------------------------------------------------------------------------


@dataclass
class Found:
    findings: list[Finding]  # estimates for the detected hardware
    configured: dict  # (path, line, column, code) -> the estimate under the user's config
    config: Config
    rules: dict
    files: list[str]


def _key(finding: Finding) -> tuple:
    return (finding.path, finding.line, finding.column, finding.code)


def load_project(paths: Sequence[str], config_file: Optional[Path], codes: Optional[Sequence[str]]):
    """(config, rules) for `paths`, with the codes given by --rule enabled even if default-off."""
    registry = load_rules()
    option_types = {c: {n: o.type for n, o in r.options.items()} for c, r in registry.rules.items()}
    first = Path(paths[0]) if paths else Path.cwd()
    start = first if first.exists() else Path.cwd()
    config = load_config(config_file, start.resolve(), set(registry.rules), option_types)
    rules = enabled_rules(registry.rules, config)
    if codes:
        rules = {code: registry.rules[code] for code in codes if code in registry.rules}
    return config, rules, registry


def collect_findings(paths: Sequence[str], config: Config, rules: dict, hardware: str) -> Found:
    found = discover(paths, config)
    configured = {}
    for result in (Linter(config, rules).lint_path(p) for p in found.files):
        for finding in result.findings:
            configured[_key(finding)] = finding.estimate
    local = config.with_overrides(hardware=hardware)
    findings = [f for p in found.files for f in Linter(local, rules).lint_path(p).findings]
    return Found(findings, configured, local, rules, list(found.files))


# -- the host -------------------------------------------------------------------------------


def detect_host(server: ProbeServer, threads: int, workdir: str) -> tuple[Host, dict]:
    answer = server.run("detect", "", {}, 120.0)
    info = (answer.get("result") or {}).get("info", {})
    cpus = usable_cpus()
    host = Host(
        cuda=bool(info.get("cuda")),
        device_name=info.get("device_name", ""),
        usable_cpus=cpus,
        cpu_count=os.cpu_count() or cpus,
        numpy=bool(info.get("numpy")),
        workdir=workdir,
        threads=threads,
    )
    if host.cuda:
        host.profile = profile_for_cuda_name(host.device_name)
        host.bf16 = bool(info.get("cuda_bf16"))
    else:
        host.profile = cpu_profile_key(cpus)
        host.bf16 = bool(info.get("cpu_bf16"))
    return host, info


def describe_host(host: Host, info: dict) -> str:
    if host.cuda:
        return f"cuda: {host.device_name} (profile {host.profile})"
    return f"cpu: {info.get('cpu_model', 'unknown CPU')}, {host.usable_cpus} usable CPUs (profile {host.profile})"


# -- running -----------------------------------------------------------------------------------


def order(variants: Sequence[str], repeats: int) -> list[str]:
    """A B B A A B ...: every round reverses the previous one, so that drift
    hits each variant alike."""
    sequence: list[str] = []
    for round_index in range(repeats):
        sequence.extend(variants if round_index % 2 == 0 else reversed(variants))
    return sequence


def plan_key(plan: Plan) -> str:
    import json

    return json.dumps([plan.bench, plan.params, plan.variants, plan.prepare, plan.problem], sort_keys=True, default=str)


def steps_of(plan: Plan, repeats: int) -> int:
    if plan.problem:
        return 0
    return len(order(plan.variants, repeats)) + (1 if plan.prepare else 0)


@dataclass
class Outcome:
    runs: dict
    problem: Optional[str] = None
    timed_out: bool = False
    notes: list[str] = field(default_factory=list)
    load: dict = field(default_factory=dict)
    order: list[str] = field(default_factory=list)


def _last_line(text: str) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "unknown error"


def execute(
    plan: Plan,
    server: ProbeServer,
    host: Host,
    repeats: int,
    timeout: float,
    min_time: float,
    tick: Callable[[], None] = lambda: None,
) -> Outcome:
    outcome = Outcome(runs={v: [] for v in plan.variants})
    if plan.problem:
        outcome.problem = plan.problem
        return outcome
    device = "cuda" if host.cuda and plan.bench not in CPU_ONLY_BENCHES else "cpu"
    params = {"threads": host.threads, "device": device, "min_time": min_time, "workdir": host.workdir, **plan.params}
    if plan.bench == "ddp":
        params.setdefault("steps", max(8, int(40 * min_time)))
    monitor = LoadMonitor([server.pid], host.usable_cpus).start()
    try:
        if plan.prepare:
            bench, prepare_params = plan.prepare
            answer = server.run(bench, "", prepare_params, timeout)
            tick()
            problem = _problem(answer, timeout, "preparing the input")
            if problem:
                outcome.problem, outcome.timed_out = problem, answer.get("timed_out", False)
                return outcome
        skipped: set[str] = set()
        for variant in order(plan.variants, repeats):
            if variant in skipped:
                tick()
                continue
            answer = server.run(plan.bench, variant, params, timeout)
            tick()
            outcome.order.append(variant)
            problem = _problem(answer, timeout, f"the {variant} variant")
            if problem and variant not in plan.variants[:2] and not answer.get("timed_out"):
                skipped.add(variant)  # an optional variant (bf16) is dropped, not fatal
                outcome.notes.append(f"{variant} not measured: {problem}")
                continue
            if problem:
                outcome.problem, outcome.timed_out = problem, answer.get("timed_out", False)
                return outcome
            result = answer["result"]
            result["rusage"] = answer.get("rusage", {})
            outcome.runs[variant].append(result)
    finally:
        outcome.load = monitor.stop()
    return outcome


def _problem(answer: dict, timeout: float, what: str) -> Optional[str]:
    if answer.get("timed_out"):
        return (
            f"timed out: {what} ran past --timeout {timeout:g} s; stopped it and its "
            f"{answer.get('stopped', 0)} process(es)"
        )
    if "error" in answer:
        return f"{what} failed: {_last_line(answer['error'])}"
    result = answer.get("result")
    if result is None:
        return f"{what} exited with code {answer.get('exit')} and no result"
    if "not_applicable" in result:
        return f"not applicable on this hardware: {result['not_applicable']}"
    return None


# -- the figures ---------------------------------------------------------------------------------


def _samples(runs: list[dict], series: str, clock: str) -> list[list[float]]:
    key = {"cuda": "cuda_ms"}.get(clock, clock)
    scale = 1e-3 if clock == "cuda" else 1.0
    out = []
    for run in runs:
        values = run.get("series", {}).get(series, {}).get(key)
        if values:
            out.append([v * scale for v in values])
    return out


def _run_median(runs: list[list[float]]) -> Optional[float]:
    medians = [stats.median(r) for r in runs if r]
    return stats.mean(medians) if medians else None


def _memory(runs: list[dict]) -> dict:
    keys = sorted({k for r in runs for k, v in r.get("memory", {}).items() if isinstance(v, (int, float))})
    figures = {}
    for key in keys:
        values = [r["memory"][key] for r in runs if isinstance(r.get("memory", {}).get(key), (int, float))]
        if values:
            figures[key] = int(stats.median(values))
    parts = next((r["memory"].get("tensor_parts") for r in runs if r.get("memory", {}).get("tensor_parts")), None)
    if parts:
        figures["tensor_parts"] = parts
    return figures


def _energy(runs: list[dict], series: str) -> tuple[Optional[float], Optional[str], str]:
    values, source = [], None
    for run in runs:
        energy = run.get("series", {}).get(series, {}).get("energy")
        if energy and energy.get("joules_per_sample") is not None:
            values.append(energy["joules_per_sample"])
            source = energy.get("source")
    note = next((r.get("info", {}).get("energy_note") for r in runs if r.get("info", {}).get("energy_note")), "")
    return (stats.median(values) if values else None), source, note


def energy_estimate(host: Host, seconds: dict, clock: str) -> Optional[dict]:
    """TDP x time, labelled as an estimate: never reported as measured joules."""
    profile = get_hardware(host.profile)
    if not profile.tdp_w:
        return None
    if host.cuda:
        watts, model = (
            profile.tdp_w * DEFAULT_UTILISATION,
            (
                f"estimated: {profile.tdp_w:g} W board limit of {profile.key} x {DEFAULT_UTILISATION:g} utilisation x time (no NVML counter)"
            ),
        )
    else:
        cores = _PROFILE_CORES.get(host.profile, max(host.usable_cpus, 1))
        watts, model = (
            profile.tdp_w / cores,
            (f"estimated: {profile.tdp_w:g} W TDP of {profile.key} / {cores} cores x CPU-seconds (no energy counter)"),
        )
    out = {k: (round(v * watts, 6) if v is not None else None) for k, v in seconds.items()}
    out["model"] = model
    return out


def analyse(
    plan: Plan,
    outcome: Outcome,
    host: Host,
    host_words: str,
    tolerance: float,
    configured_estimate=None,
) -> dict:
    finding = plan.finding
    before, after = plan.variants[0], plan.variants[1]
    runs = outcome.runs
    clock = plan.clock
    if host.cuda and runs[before] and all("cuda_ms" in r.get("series", {}).get(plan.series, {}) for r in runs[before]):
        clock = "cuda"
    load = outcome.load or {}
    foreign = load.get("foreign_load")
    floor = stats.noise_floor(foreign)
    problem = outcome.problem
    a, b = _samples(runs[before], plan.series, clock), _samples(runs[after], plan.series, clock)
    ratio = stats.ratio_interval(a, b) if a and b else None
    # Typical within-run noise: one disturbed run is the bootstrap's business.
    noise = stats.median([stats.iqr_ratio(r) for r in a + b]) if a and b else 0.0
    measured = None
    if plan.measure == "ratio":
        measured = ratio
    elif plan.measure == "extra_loads" and a and b:
        # The time the extra loads take per loop, measured (the count comes
        # from the code and is not re-derived from it). Whether that is a waste
        # depends on its share of the real loop's time, whose body the template
        # does not have: `--run` measures it.
        def extra_seconds(drawn):
            return stats.mean(drawn["before"]) - stats.mean(drawn["after"])

        measured = stats.bootstrap({"before": a, "after": b}, extra_seconds)
        if problem is None:
            loads = _samples(runs[after], "load", clock)
            one = _run_median(loads) if loads else None
            count = f"{plan.claim.low:g} extra loads" if plan.claim else "the extra loads"
            problem = (
                f"{count} take {stats.human_seconds(measured.median)} per loop "
                + (f"({stats.human_seconds(one)} each) " if one else "")
                + "here; whether that is a waste depends on their share of the loop's own time, which this "
                "template does not run: measure the script with --run"
            )
    elif plan.measure == "bytes" and runs[before] and runs[after]:
        tb = _memory(runs[before]).get("tensors")
        ta = _memory(runs[after]).get("tensors")
        if tb is not None and ta is not None:
            measured = stats.exact(float(tb - ta))
    if (
        problem is None
        and plan.measure != "bytes"
        and clock == "wall"
        and foreign is not None
        and foreign > stats.WALL_FOREIGN_LIMIT
    ):
        problem = (
            f"host too busy for a wall-clock measurement: foreign load {foreign:.2f} > {stats.WALL_FOREIGN_LIMIT:g}"
        )
    claim = plan.claim
    verdict = stats.decide(
        measured,
        claim,
        floor=floor,
        tolerance=tolerance,
        noise=noise if plan.measure != "bytes" else 0.0,
        problem=problem,
    )
    seconds = {before: _run_median(a), after: _run_median(b)}
    cpu = {v: _run_median(_samples(runs[v], plan.series, "cpu")) for v in (before, after)}
    wall = {v: _run_median(_samples(runs[v], plan.series, "wall")) for v in (before, after)}
    joules, source, energy_note = {}, None, ""
    for variant in (before, after):
        value, src, note = _energy(runs[variant], plan.series)
        joules[variant] = value
        source = source or src
        energy_note = energy_note or note
    extras = []
    for extra in plan.extras:
        num = _samples(runs.get(extra.numerator, []), extra.series, clock)
        den = _samples(runs.get(extra.denominator, []), extra.series, clock)
        if num and den:
            interval = stats.ratio_interval(num, den, resamples=1000)
            entry = {"label": extra.label, **interval.to_json()}
            if extra.credited_to:
                entry["credited_to"] = list(extra.credited_to)
            extras.append(entry)
    record = {
        "path": finding.path,
        "line": finding.line,
        "column": finding.column,
        "code": finding.code,
        "name": finding.name,
        "message": finding.message,
        "mode": "template",
        "probe": plan.title,
        "sized": plan.sized,
        "sizes": plan.sizes,
        "variants": {"before": plan.labels.get(before, before), "after": plan.labels.get(after, after)},
        "hardware": host.profile,
        "device": host_words,
        "estimate": finding.estimate.to_json() if finding.estimate else None,
        "claim": claim.to_json() if claim else None,
        "measured": None,
        "seconds": {
            "before": _round(seconds[before]),
            "after": _round(seconds[after]),
            "clock": clock,
            "per": plan.unit,
        },
        "cpu_seconds": {"before": _round(cpu[before]), "after": _round(cpu[after])},
        "wall_seconds": {"before": _round(wall[before]), "after": _round(wall[after])},
        "bytes": {"before": _memory(runs[before]), "after": _memory(runs[after])},
        "joules": {"before": _round(joules[before]), "after": _round(joules[after])},
        "energy_source": source or "none",
        "energy_note": energy_note if not source or source == "rapl-cpu-package" else "",
        "energy_estimated": None,
        "threads": host.threads if plan.bench not in ("threads",) else plan.params.get("counts"),
        "foreign_load": foreign,
        "steal_s": load.get("steal_s"),
        "noise_floor": floor,
        "noise_iqr": round(noise, 4),
        "tolerance": tolerance,
        "runs": {"before": len(runs[before]), "after": len(runs[after])},
        "order": " ".join(_letter(plan.variants, v) for v in outcome.order),
        "extras": extras,
        "details": _details(runs, plan.variants),
        "notes": plan.notes + outcome.notes,
        **verdict.to_json(),
        "timed_out": outcome.timed_out,
    }
    # Variants past the verdict's two (bf16, DDP as written) under their own
    # names, beside "before"/"after": an extension, the two keep their meaning.
    for variant in plan.variants[2:]:
        record["variants"][variant] = plan.labels.get(variant, variant)
        record["seconds"][variant] = _round(_run_median(_samples(runs[variant], plan.series, clock)))
        record["bytes"][variant] = _memory(runs[variant])
        record["runs"][variant] = len(runs[variant])
    if configured_estimate is not None and (
        finding.estimate is None or _figures(configured_estimate) != _figures(finding.estimate)
    ):
        record["estimate_configured"] = configured_estimate.to_json()
    if measured is not None:
        unit = {"ratio": "x", "extra_loads": "s", "bytes": "bytes"}[plan.measure]
        record["measured"] = {
            "metric": {"ratio": "time_ratio", "extra_loads": "extra_load_seconds", "bytes": "memory_bytes"}[
                plan.measure
            ],
            "unit": unit,
            **measured.to_json(),
            "ratio": ratio.to_json() if ratio else None,
            "clock": clock,
            "per": plan.unit,
        }
    if source is None and any(v is not None for v in cpu.values()):
        basis = (
            {before: cpu[before], after: cpu[after]}
            if not host.cuda
            else {before: seconds[before], after: seconds[after]}
        )
        record["energy_estimated"] = energy_estimate(host, basis, clock)
        if record["energy_estimated"]:
            record["energy_estimated"] = {
                "before": record["energy_estimated"][before],
                "after": record["energy_estimated"][after],
                "model": record["energy_estimated"]["model"],
            }
    return record


def _details(runs: dict, variants: Sequence[str]) -> dict:
    """What a variant's process reported besides timings (DDP buckets, optimizer state)."""
    details = {}
    for variant in variants:
        info = next((r.get("info") for r in runs.get(variant, []) if r.get("info")), None)
        if info:
            details[variant] = {k: v for k, v in info.items() if k != "energy_note"}
    return details


def _figures(estimate) -> tuple:
    # Hardware and source too: the same 1x on a100-80gb and on this CPU are different claims.
    return (estimate.metric, estimate.low, estimate.high, estimate.unit, estimate.hardware, estimate.source)


def _letter(variants: Sequence[str], variant: str) -> str:
    return "ABCDEFGH"[variants.index(variant)] if variant in variants else variant


def _round(value: Optional[float]) -> Optional[float]:
    return None if value is None or not math.isfinite(value) else round(value, 9)


# -- the whole template probe ----------------------------------------------------------------------


def plans_for(found: Found, host: Host) -> list[Plan]:
    indexes: dict[str, SourceIndex] = {}
    plans = []
    for finding in found.findings:
        if finding.code not in PROBED_CODES:
            continue
        index = indexes.setdefault(finding.path, SourceIndex(finding.path))
        plans.append(make_plan(finding, host, found.findings, index))
    return plans
