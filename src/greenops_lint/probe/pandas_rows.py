"""GO515's probe: per-row pandas work (iterrows, itertuples, apply(axis=1)) against the column operation.

pandas runs on the CPU, so the figure is a CPU figure on any host. The bench
needs pandas and says "not applicable" without it. The planner is imported by
`plans.PLANNERS` and the bench by `benches.BENCHES` (only the probe server,
which has imported torch, imports the bench).
"""

from __future__ import annotations

from typing import Optional

from greenops_lint.finding import Finding
from greenops_lint.probe.plans import Host, Plan, SourceIndex
from greenops_lint.probe.stats import Claim

# Rows per pass: sized so that the slowest variant (iterrows, ~16 us of CPU per row on a 2-vCPU VM) keeps
# the whole probe under ~10 s with the default samples; the ratio grows with the row count (GO515's page).
PANDAS_ROWS = {"iterrows": 10000, "apply": 10000, "itertuples": 50000}


def plan_pandas_rows(finding: Finding, index: SourceIndex, host: Host, claim: Optional[Claim]) -> Plan:
    message = finding.message
    method = "apply" if "apply(" in message else "itertuples" if "itertuples" in message else "iterrows"
    rows = PANDAS_ROWS[method]
    before = "df.apply(f, axis=1)" if method == "apply" else f"a loop over df.{method}()"
    return Plan(
        finding=finding,
        title=f"{before} vs the column operation",
        bench="pandas_rows",
        variants=("before", "after"),
        labels={"before": before, "after": 'df["a"] * 2 + df["b"] (vectorised)'},
        params={"method": method, "rows": rows, "energy": False},
        sized="default",
        sizes=f"{rows} rows x 2 float64 columns, a * 2 + b per row (default: the frame's size is not in the code)",
        series="pass",
        clock="cpu",
        measure="ratio",
        unit="pass",
        claim=claim,
        notes=["pandas runs on the CPU: the figure is a CPU figure on any host"],
    )


def bench_pandas_rows(params: dict, variant: str) -> dict:
    """One pass of `a * 2 + b` over a frame: per row as the finding does it, or vectorised."""
    from greenops_lint.probe.benches import NotApplicable, Setup

    try:
        import numpy as np
        import pandas as pd
    except ImportError as exc:
        raise NotApplicable("pandas is not installed") from exc
    setup = Setup({**params, "energy": params.get("energy", False)})
    rows = int(params["rows"])
    method = params.get("method", "iterrows")
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.random(rows), "b": rng.random(rows)})
    if variant == "after":
        step = lambda: (df["a"] * 2 + df["b"]).to_numpy()  # noqa: E731
    elif method == "apply":
        step = lambda: df.apply(lambda r: r["a"] * 2 + r["b"], axis=1).to_numpy()  # noqa: E731
    elif method == "itertuples":
        step = lambda: np.array([r.a * 2 + r.b for r in df.itertuples()])  # noqa: E731
    else:
        step = lambda: np.array([r["a"] * 2 + r["b"] for _, r in df.iterrows()])  # noqa: E731
    series = {"pass": setup.loop(step, warmup=1, min_samples=int(params.get("min_samples", 3)), min_sample_s=0.01)}
    return {
        "series": series,
        "memory": setup.memory(),
        "info": {"rows": rows, "method": method, "pandas": pd.__version__, "energy_note": setup.energy_note},
    }
