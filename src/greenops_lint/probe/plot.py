"""`--plot FILE.png`: before/after per finding, with intervals and the estimate."""

from __future__ import annotations

import math

PLOT_HINT = "pip install 'greenops-lint[plot]'"


def matplotlib_missing() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return True
    return False


def plot(records: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in records if r.get("seconds", {}).get("before") is not None or r.get("measured")]
    height = max(2.5, 0.9 * len(rows) + 1.5)
    figure, (times, ratios) = plt.subplots(1, 2, figsize=(12, height), gridspec_kw={"width_ratios": [1, 1.2]})
    labels = [f"{r['code']} {r['path'].split('/')[-1]}:{r.get('line') or ''}" for r in rows]
    positions = list(range(len(rows)))
    # Left: seconds before/after per unit of work.
    for offset, key, colour in ((-0.18, "before", "#c0504d"), (0.18, "after", "#4f81bd")):
        values = [r.get("seconds", {}).get(key) or 0.0 for r in rows]
        times.barh([p + offset for p in positions], values, height=0.34, color=colour, label=key)
    times.set_yticks(positions, labels)
    times.invert_yaxis()
    times.set_xlabel("seconds per unit of work (median)")
    times.legend(loc="lower right")
    times.set_title("before / after")
    # Right: the measured ratio (interval) against the estimated range.
    for y, record in zip(positions, rows):
        measured = record.get("measured") or {}
        interval = measured.get("ratio") if measured.get("metric") != "time_ratio" else measured
        band = record.get("band")
        if (
            band
            and band[0] is not None
            and record.get("claim", {})
            and record["claim"]["metric"] in ("time_factor", "ratio")
        ):
            high = band[1] if band[1] is not None and math.isfinite(band[1]) else (band[0] * 4)
            ratios.fill_betweenx(
                [y - 0.3, y + 0.3],
                band[0],
                high,
                color="#9bbb59",
                alpha=0.35,
                label="estimate (with tolerance)" if y == 0 else None,
            )
        if interval and interval.get("median") is not None:
            low, high = interval.get("low") or interval["median"], interval.get("high") or interval["median"]
            ratios.errorbar(
                interval["median"],
                y,
                xerr=[[interval["median"] - low], [high - interval["median"]]],
                fmt="o",
                color="black",
                capsize=4,
            )
            ratios.annotate(record["verdict"], (high, y), xytext=(6, -3), textcoords="offset points", fontsize=8)
    ratios.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ratios.set_yticks(positions, labels)
    ratios.invert_yaxis()
    ratios.set_xscale("log")
    ratios.set_xlabel("time ratio before/after (95% bootstrap interval)")
    ratios.set_title("measured vs estimated")
    if rows:
        ratios.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
