"""Statistics of the probe: bootstrap intervals and the verdict.

Pure Python (no NumPy), deterministic (seeded). Samples come in *runs*: one
list of per-step samples for each subprocess a variant ran in. Between-run
noise is often larger than within-run noise (a different process, a busier
neighbour), so the bootstrap is hierarchical: resample the runs, then the
samples within each chosen run; the statistic of a variant is the mean of its
run medians.
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import asdict, dataclass
from typing import Callable, Mapping, Optional, Sequence

CONFIRMED, REFUTED, INCONCLUSIVE, CHECKED = "confirmed", "refuted", "inconclusive", "checked"
# `checked`: an arithmetic check (parameter or array bytes recomputed from the
# sizes the estimate was computed from) agrees; it confirms the arithmetic, not
# an independent measurement of the waste.
VERDICTS = (CONFIRMED, REFUTED, INCONCLUSIVE, CHECKED)

DEFAULT_RESAMPLES = 2000
# Ratios inside [1/f, f] are "no measurable change" (torch.utils.benchmark and
# the calibration in probe-research.md: 1-thread CPU-time ratios repeat within
# about 3%, so 5% is a floor; 10% when another process keeps the host busy).
NOISE_FLOOR = 1.05
BUSY_NOISE_FLOOR = 1.10
BUSY_FOREIGN_LOAD = 0.2
# A wall clock on a host more than half busy with foreign work says nothing.
WALL_FOREIGN_LIMIT = 0.5
# Samples scattered wider than this (IQR/median) make a median meaningless:
# torch.utils.benchmark's second warning level. Below it the hierarchical
# bootstrap carries the noise into the interval (measured on a 2-vCPU VM
# beside a busy neighbour: per-step CPU-time IQR 10-20% from SMT sharing,
# yet run medians repeat within a few percent).
NOISY_IQR = 0.25
# An interval wider than this factor (high/low) is too wide to judge.
MAX_SPREAD = 1.5
# Estimates are engineering figures: an interval within 25% of the estimated
# range counts as agreeing with it (float64 is 1.8x for a GEMM-bound MLP and
# 3.3x for a conv on the same CPU: no single figure is closer than that).
DEFAULT_TOLERANCE = 0.25
MAX_SAMPLES_PER_RUN = 60


@dataclass(frozen=True)
class Interval:
    median: float
    low: float
    high: float

    def to_json(self) -> dict:
        return {k: _finite(v) for k, v in asdict(self).items()}

    @property
    def spread(self) -> float:
        if self.low <= 0 or not math.isfinite(self.high):
            return math.inf
        return self.high / self.low


def _finite(value: float) -> Optional[float]:
    return round(value, 6) if value is not None and math.isfinite(value) else None


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def iqr_ratio(values: Sequence[float]) -> float:
    """Interquartile range over the median. Below 4 samples quartiles mean
    nothing: half the range over the median stands in (for a normal sample of
    2-3 the range/2 is about the IQR), 0 for a single sample."""
    if len(values) < 2:
        return 0.0
    if len(values) < 4:
        mid = statistics.median(values)
        return (max(values) - min(values)) / 2 / mid if mid > 0 else math.inf
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    mid = statistics.median(values)
    return (q3 - q1) / mid if mid > 0 else math.inf


def _thin(run: Sequence[float], limit: int = MAX_SAMPLES_PER_RUN) -> list[float]:
    if len(run) <= limit:
        return list(run)
    step = len(run) / limit
    return [run[int(i * step)] for i in range(limit)]


def point(
    groups: Mapping[str, Sequence[Sequence[float]]], statistic: Callable[[Mapping[str, list[float]]], float]
) -> float:
    """The statistic on the observed run medians."""
    return statistic({name: [median(r) for r in runs if r] for name, runs in groups.items()})


def bootstrap(
    groups: Mapping[str, Sequence[Sequence[float]]],
    statistic: Callable[[Mapping[str, list[float]]], float],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """Percentile interval of `statistic`, a function of each group's run medians.

    `groups` maps a name (a variant, or a quantity of one) to its runs, each a
    list of samples. Each resample draws runs with replacement and, for each
    drawn run, the median of a resample of its samples.
    """
    rng = random.Random(seed)
    clean = {name: [_thin(r) for r in runs if r] for name, runs in groups.items()}
    if any(not runs for runs in clean.values()):
        raise ValueError("every group needs at least one run with samples")
    observed = statistic({name: [median(r) for r in runs] for name, runs in clean.items()})
    # Within-run bootstrap medians, drawn once per run.
    boot = {
        name: [[median(rng.choices(run, k=len(run))) for _ in range(resamples)] for run in runs]
        for name, runs in clean.items()
    }
    values = []
    for _ in range(resamples):
        drawn = {}
        for name, runs in boot.items():
            picks = rng.choices(range(len(runs)), k=len(runs))
            drawn[name] = [runs[i][rng.randrange(resamples)] for i in picks]
        value = statistic(drawn)
        if value is not None and not math.isnan(value):
            values.append(value)
    if not values:
        return Interval(observed, math.nan, math.nan)
    values.sort()
    tail = (1 - level) / 2
    low = values[max(0, int(math.floor(tail * (len(values) - 1))))]
    high = values[min(len(values) - 1, int(math.ceil((1 - tail) * (len(values) - 1))))]
    return Interval(observed, min(low, observed), max(high, observed))


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def ratio_of(before: str, after: str) -> Callable[[Mapping[str, list[float]]], float]:
    """before/after of the mean run medians: how many times longer `before` takes."""

    def statistic(drawn: Mapping[str, list[float]]) -> float:
        denominator = mean(drawn[after])
        return mean(drawn[before]) / denominator if denominator > 0 else math.inf

    return statistic


# Below this many runs per variant a percentile bootstrap over runs covers far
# less than its nominal 95% (about 80% measured with 3 runs): the interval is
# widened to a Welch t-interval on the log run medians.
SMALL_RUNS = 10
# Two-sided 97.5% quantiles of Student's t by degrees of freedom (1-30).
_T975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def t_quantile(df: float) -> float:
    """t_{0.975, df}, conservative for fractional df (rounded down)."""
    if df < 1:
        return math.inf
    whole = int(math.floor(df))
    return _T975[whole - 1] if whole <= len(_T975) else 1.96 + 2.4 / whole


def log_t_interval(before: Sequence[float], after: Sequence[float]) -> Optional[Interval]:
    """Welch t-interval of before/after on the log scale (a ratio of
    geometric means); None with fewer than 2 values on either side."""
    if len(before) < 2 or len(after) < 2 or min(before) <= 0 or min(after) <= 0:
        return None
    la, lb = [math.log(v) for v in before], [math.log(v) for v in after]
    va, vb = statistics.variance(la) / len(la), statistics.variance(lb) / len(lb)
    centre = statistics.fmean(la) - statistics.fmean(lb)
    se = math.sqrt(va + vb)
    if se == 0:
        return Interval(math.exp(centre), math.exp(centre), math.exp(centre))
    df = (va + vb) ** 2 / ((va**2 / (len(la) - 1) if va else 0.0) + (vb**2 / (len(lb) - 1) if vb else 0.0))
    half = t_quantile(df) * se
    return Interval(math.exp(centre), math.exp(centre - half), math.exp(centre + half))


def ratio_interval(before: Sequence[Sequence[float]], after: Sequence[Sequence[float]], **kwargs) -> Interval:
    """The ratio's interval: the hierarchical bootstrap, widened at small run
    counts to cover the Welch t-interval of the run medians."""
    interval = bootstrap({"before": before, "after": after}, ratio_of("before", "after"), **kwargs)
    a, b = [median(r) for r in before if r], [median(r) for r in after if r]
    if min(len(a), len(b)) < SMALL_RUNS:
        t = log_t_interval(a, b)
        if t is not None and not math.isnan(interval.low):
            interval = Interval(interval.median, min(interval.low, t.low), max(interval.high, t.high))
    return interval


def exact(value: float) -> Interval:
    """A deterministic figure (tensor byte counts): an interval of width 0."""
    return Interval(value, value, value)


# -- the verdict -------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """The range a measurement is checked against, in the measured unit.

    `low`/`high` come from the finding's estimate (recomputed for the host) or,
    for rules without one, from what the rule's message claims. `saving` says
    whether the claim promises a measurable saving (low above the noise floor).
    """

    metric: str
    low: float
    high: float
    unit: str
    source: str
    deterministic: bool = False

    def to_json(self) -> dict:
        data = asdict(self)
        data["low"], data["high"] = _finite(self.low), _finite(self.high)
        return data


@dataclass(frozen=True)
class Verdict:
    verdict: str
    reason: str
    band: Optional[tuple[float, float]] = None

    def to_json(self) -> dict:
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "band": [_finite(self.band[0]), _finite(self.band[1])] if self.band else None,
        }


def noise_floor(foreign_load: Optional[float]) -> float:
    return BUSY_NOISE_FLOOR if foreign_load is not None and foreign_load > BUSY_FOREIGN_LOAD else NOISE_FLOOR


def claim_band(claim: Claim, floor: float, tolerance: float) -> tuple[float, float]:
    """The accepted range: the claim widened by the tolerance; a claim that
    allows no saving (low <= 1) reaches down to "not measurably slower"."""
    if claim.deterministic:
        tolerance = min(tolerance, 0.01) if claim.metric == "memory_bytes" else tolerance
    if claim.metric in ("time_factor", "ratio"):
        low = max(floor, claim.low / (1 + tolerance)) if claim.low > floor else min(claim.low, 1.0) / floor
        return low, claim.high * (1 + tolerance)
    return claim.low / (1 + tolerance), claim.high * (1 + tolerance)


def decide(
    measured: Optional[Interval],
    claim: Optional[Claim],
    *,
    floor: float = NOISE_FLOOR,
    tolerance: float = DEFAULT_TOLERANCE,
    noise: float = 0.0,
    problem: Optional[str] = None,
) -> Verdict:
    """confirmed / refuted / inconclusive / checked for one measured interval.

    * inconclusive: a `problem` (timed out, not applicable, failed), no claim
      to check, scattered samples (IQR/median > 25%), an interval too wide
      or straddling "no change" while the claim promises a saving;
    * refuted: the interval lies entirely outside the accepted band (says
      whether the saving is smaller or larger than estimated);
    * confirmed: the interval overlaps the band and excludes "no change" (a
      claim whose range starts at 1.0 is confirmed only by a measured saving);
    * checked: a deterministic (arithmetic) claim that the measurement matches.
    """
    if problem:
        return Verdict(INCONCLUSIVE, problem)
    if measured is None or math.isnan(measured.low) or math.isnan(measured.high):
        return Verdict(INCONCLUSIVE, "no measurement")
    if claim is None:
        return Verdict(INCONCLUSIVE, "no estimate to check: the finding carries none and the code gives no sizes")
    band = claim_band(claim, floor, tolerance)
    ratio_like = claim.metric in ("time_factor", "ratio")
    if not claim.deterministic:
        if noise > NOISY_IQR:
            return Verdict(
                INCONCLUSIVE, f"too noisy: IQR/median {noise:.0%} > {NOISY_IQR:.0%}; rerun on a quieter host", band
            )
        too_wide = (
            measured.spread > MAX_SPREAD
            if ratio_like
            else measured.median == 0 or (measured.high - measured.low) / abs(measured.median) > MAX_SPREAD - 1
        )
        if too_wide:
            return Verdict(
                INCONCLUSIVE,
                f"interval too wide ({_fmt(measured.low)} to {_fmt(measured.high)}); rerun with more --repeats",
                band,
            )
    where = _range(band, claim)
    if ratio_like and claim.low > floor and measured.high < floor:
        return Verdict(REFUTED, f"no measurable saving: the interval is below the noise floor {floor:g}x", band)
    if ratio_like and claim.low <= floor and measured.high < 1 / floor:
        return Verdict(REFUTED, "the fix made it measurably slower", band)
    if ratio_like and 1.0 <= claim.low and claim.high <= floor and measured.low > 1 / floor and measured.high <= floor:
        # The claim is "no measurable time saving" (a tiny float64 model): shown
        # only by an interval inside the noise band, an equivalence test.
        return Verdict(
            CONFIRMED,
            f"no measurable difference, as estimated ({_fmt(claim.low)}-{_fmt(claim.high)}x): the interval lies "
            f"within the noise floor {floor:g}x",
            band,
        )
    if ratio_like and 1.0 <= claim.low and claim.high <= floor and measured.low <= floor:
        return Verdict(
            INCONCLUSIVE,
            f"the estimate claims no measurable time saving ({_fmt(claim.low)}-{_fmt(claim.high)}x); the interval "
            f"({_fmt(measured.low)} to {_fmt(measured.high)}) is too wide to show it",
            band,
        )
    if ratio_like and claim.low <= floor and measured.high <= floor:
        return Verdict(
            INCONCLUSIVE,
            f"no measurable saving (the interval is within the noise floor {floor:g}x); the claim allows none "
            f"({_fmt(claim.low)}-{_fmt(claim.high)}x), so it is neither confirmed nor refuted",
            band,
        )
    if measured.high < band[0]:
        return Verdict(REFUTED, f"smaller than estimated: the interval is below the accepted range {where}", band)
    if measured.low > band[1]:
        return Verdict(
            REFUTED,
            f"larger than estimated: the interval is above the accepted range {where}; the waste is real, "
            "the estimate is too cautious for this machine",
            band,
        )
    if ratio_like:
        if measured.low <= floor:
            return Verdict(
                INCONCLUSIVE, f"the interval reaches the noise floor {floor:g}x: no saving is not ruled out", band
            )
    elif claim.low > 0 and measured.low <= 0:
        return Verdict(INCONCLUSIVE, "the interval includes no saving", band)
    if claim.deterministic:
        return Verdict(
            CHECKED, f"the arithmetic checks: the measured figure is within the accepted range {where}", band
        )
    return Verdict(CONFIRMED, f"the interval overlaps the accepted range {where}", band)


def _range(band: tuple[float, float], claim: Claim) -> str:
    if claim.metric in ("time_factor", "ratio") and not math.isfinite(band[1]):
        return f"of a measurable saving (above {_fmt(band[0])}x)"
    if claim.metric in ("time_factor", "ratio"):
        return f"{_fmt(band[0])}-{_fmt(band[1])}x"
    if claim.metric == "memory_bytes":
        return f"{human_bytes(band[0])} to {human_bytes(band[1])}"
    return f"{_fmt(band[0])}-{_fmt(band[1])} {claim.unit}"


def human_bytes(value: float) -> str:
    sign = "-" if value < 0 else ""
    value = abs(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{sign}{value:.0f} {unit}" if unit == "B" else f"{sign}{value:.1f} {unit}"
        value /= 1024
    return f"{sign}{value:.1f} GiB"  # pragma: no cover


def human_seconds(value: float) -> str:
    if not math.isfinite(value):
        return "?"
    if abs(value) < 1e-3:
        return f"{value * 1e6:.0f} us"
    if abs(value) < 1:
        return f"{value * 1e3:.3g} ms"
    return f"{value:.3g} s"


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return "inf"
    return f"{value:.3g}"
