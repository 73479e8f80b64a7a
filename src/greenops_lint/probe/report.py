"""The probe's output: a text block per finding, or a JSON array of records."""

from __future__ import annotations

import json
import math
from typing import Optional

from greenops_lint.probe.stats import human_bytes

_CLOCKS = {"cpu": "CPU time", "wall": "wall time", "cuda": "CUDA time"}


def render_json(records: list[dict]) -> str:
    return json.dumps(records, indent=2, default=_plain) + "\n"


def _plain(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def _seconds(value: Optional[float]) -> str:
    if value is None:
        return "n/a"
    if value >= 1:
        return f"{value:.3g} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} us"


def _x(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.3g}x"


def _interval(data: dict, unit: str = "x") -> str:
    if unit == "bytes":
        if data.get("low") == data.get("high"):
            return f"{human_bytes(data['median'])} (exact)"
        return f"{human_bytes(data['median'])} [{human_bytes(data['low'])}, {human_bytes(data['high'])}]"
    fmt = lambda v: "n/a" if v is None else f"{v:.3g}"
    suffix = "x" if unit == "x" else f" {unit}"
    return f"{fmt(data.get('median'))}{suffix} [{fmt(data.get('low'))}, {fmt(data.get('high'))}]"


def _estimate_words(estimate: Optional[dict]) -> str:
    if not estimate:
        return "none"
    low, high = estimate["low"], estimate["high"]
    if estimate["metric"] == "memory_bytes":
        span = human_bytes(low) if low == high else f"{human_bytes(low)} to {human_bytes(high)}"
        return f"{span} memory"
    span = f"{low:g}" if low == high else f"{low:g}-{high:g}"
    where = "measured on CPU" if estimate.get("source") == "measured on CPU" else f"on {estimate['hardware']}"
    if estimate["metric"] == "time_factor":
        return f"{span}x time {where}"
    return f"{span} {estimate['unit']}"


_MEMORY = (
    ("tensors", "tensors", ""),
    ("peak_rss", "peak RSS", "+"),
    ("pss", "PSS of all processes", ""),
    ("checkpoint", "checkpoint", ""),
    ("gpu_peak_allocated", "GPU peak allocated", ""),
    ("maxrss", "max RSS", ""),
)


def _signed_bytes(value, sign: str) -> str:
    return "n/a" if value is None else sign + human_bytes(value)


def _memory_words(before: dict, after: dict) -> str:
    parts = []
    for key, label, sign in _MEMORY:
        if key in before or key in after:
            parts.append(f"{label} {_signed_bytes(before.get(key), sign)} -> {_signed_bytes(after.get(key), sign)}")
    return "; ".join(parts) or "n/a"


def _threads(value) -> str:
    if isinstance(value, dict):
        return f"threads {value.get('before')} vs {value.get('after')}"
    if value == 1:
        return "1 thread"
    return f"{value} threads" if isinstance(value, int) else f"threads: {value}"


def byte_sizes(value) -> list[int]:
    """DDP's logging data gives sizes as a list of ints in some torch versions
    and as a string ("1024, 2048") in others (2.13); anything else is no data."""
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [int(value)]
    if isinstance(value, str):
        parts = [p.strip() for p in value.replace(";", ",").split(",") if p.strip()]
        return [int(p) for p in parts] if all(p.isdigit() for p in parts) else []
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return []


def _other_variants(variants: dict) -> list[tuple[str, str]]:
    """Variants beyond the verdict's before/after (bf16, DDP as written)."""
    return [(name, label) for name, label in variants.items() if name not in ("before", "after")]


def render_text(records: list[dict]) -> str:
    blocks = []
    for record in records:
        lines = []
        where = f"{record['path']}:{record['line']}:{record.get('column', 1)}" if record.get("line") else record["path"]
        lines.append(f"{where}: {record['code']} {record.get('name', '')} -- {record['probe']}".replace("  ", " "))
        if record.get("command"):
            lines.append(f"  command    {record['command']}")
        lines.append(f"  sized      {record['sized']}: {record['sizes']}")
        variants = record.get("variants") or {}
        if variants:
            others = "".join(f"; {name.replace('_', ' ')}: {label}" for name, label in _other_variants(variants))
            lines.append(f"  variants   before: {variants.get('before')}; after: {variants.get('after')}{others}")
        estimate = _estimate_words(record.get("estimate"))
        configured = record.get("estimate_configured")
        if configured:
            estimate += (
                f" (the figure for this host's profile; your configuration's {_estimate_words(configured)} "
                "is not what this run checks)"
            )
        lines.append(f"  estimate   {estimate}")
        measured = record.get("measured")
        seconds = record.get("seconds") or {}
        clock = _CLOCKS.get(seconds.get("clock"), seconds.get("clock", ""))
        per = seconds.get("per", "")
        timing = f"{_seconds(seconds.get('before'))} -> {_seconds(seconds.get('after'))} per {per} ({clock})"
        if measured:
            unit = measured["unit"]
            if measured["metric"] == "time_ratio":
                lines.append(f"  measured   {_interval(measured)} {clock} per {per}: {timing.split(' per ')[0]}")
            elif measured["metric"] in ("repeated_work", "extra_load_seconds"):
                lines.append(f"  measured   {_interval(measured, unit)} per loop saved by loading once")
                if measured.get("ratio"):
                    lines.append(f"  speed-up   {_interval(measured['ratio'])} for the loading work: {timing}")
            else:
                lines.append(f"  measured   {_interval(measured, 'bytes')} saved")
                if measured.get("ratio"):
                    lines.append(f"  time       {_interval(measured['ratio'])} before/after: {timing}")
        else:
            lines.append("  measured   nothing" + (f" ({timing})" if seconds.get("before") else ""))
        for name, _ in _other_variants(variants):
            memory = _memory_words(record["bytes"].get(name, {}), {}).replace(" -> n/a", "")
            lines.append(
                f"  also       {name.replace('_', ' ')}: {_seconds((record.get('seconds') or {}).get(name))} "
                f"per {per} ({clock}); {memory}"
            )
        for extra in record.get("extras") or []:
            credit = ""
            if extra.get("credited_to"):
                credit = f", credited to {' + '.join(extra['credited_to'])} together, not to {record['code']} alone"
            lines.append(f"  also       {extra['label']}: {_interval(extra)}{credit}")
        for variant, info in (record.get("details") or {}).items():
            ddp = info.get("ddp") or {}
            sizes = byte_sizes(ddp.get("bucket_sizes"))
            if sizes:
                buckets = " + ".join(human_bytes(b) for b in sizes)
                unused = (byte_sizes(ddp.get("unused_parameter_size")) or [0])[0]
                lines.append(
                    f"  ddp        {variant}: gradient buckets {buckets}"
                    + (f", unused parameters {human_bytes(unused)}" if unused else "")
                )
        lines.append(
            f"  memory     {_memory_words(record['bytes'].get('before', {}), record['bytes'].get('after', {}))}"
        )
        joules = record.get("joules") or {}
        if record.get("energy_source") not in (None, "none"):
            lines.append(
                f"  energy     {joules.get('before'):.4g} J -> {joules.get('after'):.4g} J per {per} "
                f"(measured, {record['energy_source']}"
                + ("; the CPU packages only, not the GPU" if record["energy_source"] == "rapl-cpu-package" else "")
                + ")"
                if joules.get("before") is not None and joules.get("after") is not None
                else f"  energy     counter {record['energy_source']} gave no reading"
            )
        else:
            note = record.get("energy_note")
            lines.append(f"  energy     not measured: {note or 'no energy counter'}")
            estimated = record.get("energy_estimated")
            if estimated and estimated.get("before") is not None:
                model = estimated["model"].removeprefix("estimated: ").split(" (no ")[0]
                lines.append(
                    f"  (est.)     {estimated['before']:.3g} J -> {estimated['after']:.3g} J per {per}, from {model}: an estimate, not a measurement"
                )
        foreign = record.get("foreign_load")
        runs = record.get("runs") or {}
        context = [
            _threads(record.get("threads")),
            f"foreign load {foreign:.2f}" if foreign is not None else "foreign load unknown",
            f"noise floor {record.get('noise_floor', 1.05):g}x",
            f"{runs.get('before', 0)}+{runs.get('after', 0)} runs",
        ]
        if record.get("order"):
            context.append(f"order {record['order']}")
        lines.append(f"  context    {', '.join(context)}")
        for note in record.get("notes") or []:
            lines.append(f"  note       {note}")
        lines.append(f"  verdict    {record['verdict'].upper()}: {record['reason']}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + ("\n" if blocks else "")


def summary(records: list[dict]) -> str:
    counts = {
        v: sum(1 for r in records if r["verdict"] == v) for v in ("confirmed", "checked", "refuted", "inconclusive")
    }
    checked = f"{counts['checked']} checked (arithmetic), " if counts["checked"] else ""
    line = (
        f"Probed {len(records)} finding{'s' if len(records) != 1 else ''}: "
        f"{counts['confirmed']} confirmed, {checked}{counts['refuted']} refuted, {counts['inconclusive']} inconclusive."
    )
    # Verdicts judge the figures for the host measured on: say so where the
    # user's configured hardware (a GPU, say) gave other figures.
    rechecked = sorted({r.get("hardware", "") for r in records if r.get("estimate_configured")} - {""})
    configured = sorted(
        {(r["estimate_configured"] or {}).get("hardware", "") for r in records if r.get("estimate_configured")} - {""}
    )
    if rechecked and configured:
        line += (
            f" Verdicts are on the figures for this host ({', '.join(rechecked)}); "
            f"those for {', '.join(configured)} are not checked by this run."
        )
    return line
