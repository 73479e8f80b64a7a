"""Estimate vs measured, per probe-able rule, on this machine: one probe run.

    python benchmarks/estimates_vs_measured.py [--repeats 4] [--min-time 0.3]

Copies the probe fixtures (fixtures/probe/) and two float64 models that bracket
the float64 estimate (a 4-wide MLP, overhead-bound; a small CNN, where float64
convolutions leave oneDNN on CPU) into a temporary project configured for
`hardware = "a100-80gb"`, runs `greenops-lint probe --format json` on it once,
and writes benchmarks/results/estimates-vs-measured.md (and the JSON beside
it): for each finding the estimate the user sees (A100), the estimate
rechecked for this host, the measured interval and the verdict.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

TINY = """\
import torch
from torch import nn

model = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2)).double()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
BATCH_SIZE = 64
"""

CNN = """\
import torch
from torch import nn

model = nn.Sequential(
    nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
    nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
    nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
).double()
images = torch.randn(16, 3, 32, 32)
"""


def _span(estimate: dict | None, hardware: str = "") -> str:
    if not estimate:
        return "none"
    low, high = estimate["low"], estimate["high"]
    if estimate["metric"] == "memory_bytes":
        from greenops_lint.probe.stats import human_bytes

        return human_bytes(low) if low == high else f"{human_bytes(low)}-{human_bytes(high)}"
    span = f"{low:g}" if low == high else f"{low:g}-{high:g}"
    if estimate["metric"] != "time_factor":
        return f"{span} {estimate['unit']}"
    from greenops_lint.finding import SavingsEstimate

    cpu = SavingsEstimate(**{**estimate, "assumptions": tuple(estimate.get("assumptions", ()))}).measured_on_cpu
    where = "measured on CPU" if cpu else hardware or estimate["hardware"]
    return f"{span}x ({where})"


def _measured(record: dict) -> str:
    measured = record.get("measured")
    if not measured:
        return "-"
    fmt = lambda v: "n/a" if v is None else f"{v:.3g}"  # noqa: E731
    if measured["unit"] == "bytes":
        from greenops_lint.probe.stats import human_bytes

        return (
            f"{human_bytes(measured['median'])} (exact)"
            if measured["low"] == measured["high"]
            else human_bytes(measured["median"])
        )
    if measured["unit"] == "s":
        return (
            f"{fmt(measured['median'] * 1e3)} ms [{fmt(measured['low'] * 1e3)}, {fmt(measured['high'] * 1e3)}] per loop"
        )
    return f"{fmt(measured['median'])}x [{fmt(measured['low'])}, {fmt(measured['high'])}] {measured.get('clock', '')}"


def table(records: list[dict], host: str) -> str:
    lines = [
        "# Estimates vs measured on this CPU",
        "",
        f"One run of `benchmarks/estimates_vs_measured.py` on {host}. Each row is a finding in a",
        "probe fixture; *estimate (A100)* is what `greenops-lint check --hardware a100-80gb` prints,",
        "*claim here* the estimate recomputed for this host (the probe never checks a GPU figure on a CPU),",
        "*measured* the 95% interval. `checked` = an arithmetic check (bytes); `inconclusive` says why.",
        "",
        "| rule | fixture | sized | estimate (A100) | claim here | measured | verdict | reason |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        # Without `estimate_configured` the configured estimate is this host's (same hardware).
        configured = r.get("estimate_configured") or r.get("estimate")
        configured_words = _span(configured, "a100-80gb")
        claim = r.get("claim")
        claim_words = (
            "-"
            if not claim
            else (
                f"{claim['low']:g}-{claim['high']:g}{'x' if claim['metric'] in ('time_factor', 'ratio') else ' ' + claim['unit']}"
                if claim["metric"] != "memory_bytes"
                else _span({**claim, "hardware": r.get("hardware")})
            )
        )
        reason = r.get("reason", "").replace("|", "/")
        lines.append(
            f"| {r['code']} | {Path(r['path']).name}:{r.get('line')} | {r['sized']} | {configured_words} | "
            f"{claim_words} | {_measured(r)} | **{r['verdict']}** | {reason} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", default="4")
    parser.add_argument("--min-time", default="0.3")
    parser.add_argument("--from-json", type=Path, help="Rebuild the table from a saved JSON report instead of probing.")
    args = parser.parse_args()
    if args.from_json:
        records = json.loads(args.from_json.read_text())
        text = table(records, f"{records[0]['device']}, torch {_torch()}" if records else "?")
        (RESULTS / "estimates-vs-measured.md").write_text(text)
        print(text)
        return 0
    work = Path(tempfile.mkdtemp(prefix="greenops-estimates-"))
    try:
        for fixture in sorted((ROOT / "fixtures" / "probe").glob("*.py")):
            shutil.copy(fixture, work / fixture.name)
        (work / "GO402_tiny_mlp.py").write_text(TINY)
        (work / "GO402_small_cnn.py").write_text(CNN)
        (work / "pyproject.toml").write_text('[tool.greenops-lint]\nhardware = "a100-80gb"\n')
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "greenops_lint",
                "probe",
                str(work),
                "--format",
                "json",
                "--repeats",
                args.repeats,
                "--min-time",
                args.min_time,
            ],
            cwd=work,
            capture_output=True,
            text=True,
        )
        if not result.stdout.strip():
            print(result.stderr, file=sys.stderr)
            return 1
        records = json.loads(result.stdout)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for record in records:
        record["path"] = Path(record["path"]).name
    host = f"{records[0]['device'] if records else platform.processor()}, torch {_torch()}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "estimates-vs-measured.json").write_text(json.dumps(records, indent=1) + "\n")
    text = table(records, host)
    (RESULTS / "estimates-vs-measured.md").write_text(text)
    print(text)
    print(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "", file=sys.stderr)
    return 0


def _torch() -> str:
    try:
        import torch

        return torch.__version__
    except ImportError:
        return "n/a"


if __name__ == "__main__":
    sys.exit(main())
