"""The probe's statistics and verdicts, on synthetic samples (no torch, no timing)."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from greenops_lint.probe import stats
from greenops_lint.probe.runner import order
from greenops_lint.probe.stats import CHECKED, CONFIRMED, INCONCLUSIVE, REFUTED, Claim, Interval, decide

FLOAT64 = Claim("time_factor", 2.0, 2.1, "x", "float64 on cloud-vcpu-2")
DDP = Claim("time_factor", 1.0, 2.4, "x", "GO202")
BYTES = Claim("memory_bytes", 16 * 2**20, 16 * 2**20, "bytes", "params x 4", deterministic=True)
LOADS = Claim("repeated_work", 4, 4, "extra loads", "5 iterations")


def runs(rng, centre, n_runs=3, n=30, spread=0.02, run_spread=0.0):
    out = []
    for _ in range(n_runs):
        level = centre * (1 + rng.gauss(0, run_spread))
        out.append([level * math.exp(rng.gauss(0, spread)) for _ in range(n)])
    return out


def test_bootstrap_interval_covers_the_true_ratio_and_is_ordered():
    rng = random.Random(1)
    interval = stats.ratio_interval(runs(rng, 0.020), runs(rng, 0.010))
    assert interval.low <= interval.median <= interval.high
    assert interval.low < 2.0 < interval.high
    assert interval.high / interval.low < 1.1


def test_between_run_noise_widens_the_interval():
    tight = stats.ratio_interval(runs(random.Random(2), 2.0), runs(random.Random(3), 1.0))
    loose = stats.ratio_interval(
        runs(random.Random(2), 2.0, run_spread=0.15), runs(random.Random(3), 1.0, run_spread=0.15)
    )
    assert (loose.high - loose.low) > 2 * (tight.high - tight.low)


def test_bootstrap_is_deterministic_and_handles_a_custom_statistic():
    groups = {
        "before": runs(random.Random(4), 5.0),
        "after": runs(random.Random(5), 1.0),
        "load": runs(random.Random(6), 1.0),
    }
    extra = lambda d: (stats.mean(d["before"]) - stats.mean(d["after"])) / stats.mean(d["load"])  # noqa: E731
    first, second = stats.bootstrap(groups, extra), stats.bootstrap(groups, extra)
    assert first == second
    assert first.low < 4.0 < first.high


def test_bootstrap_needs_samples():
    with pytest.raises(ValueError):
        stats.ratio_interval([], [[1.0]])


def test_exact_and_iqr():
    assert stats.exact(5.0) == Interval(5.0, 5.0, 5.0)
    assert stats.iqr_ratio([1.0, 1.0, 1.0, 1.0]) == 0.0
    assert stats.iqr_ratio([1.0]) == 0.0
    # Below 4 samples half the range over the median stands in for the IQR.
    assert stats.iqr_ratio([1.0, 2.0]) == pytest.approx(1 / 3)
    assert stats.iqr_ratio([1.0, 1.3, 1.0]) == pytest.approx(0.15)
    assert stats.iqr_ratio([0.8, 0.9, 1.0, 1.1, 1.2]) == pytest.approx(0.2)


def test_noise_floor_widens_on_a_busy_host():
    assert stats.noise_floor(0.0) == stats.NOISE_FLOOR
    assert stats.noise_floor(None) == stats.NOISE_FLOOR
    assert stats.noise_floor(0.5) == stats.BUSY_NOISE_FLOOR


@pytest.mark.parametrize(
    "interval, claim, verdict, words",
    [
        ((1.85, 1.80, 1.90), FLOAT64, CONFIRMED, "overlaps"),
        ((2.05, 2.00, 2.10), FLOAT64, CONFIRMED, "overlaps"),
        ((1.25, 1.20, 1.30), FLOAT64, REFUTED, "smaller than estimated"),
        ((1.00, 0.97, 1.03), FLOAT64, REFUTED, "no measurable saving"),
        ((3.30, 3.20, 3.45), FLOAT64, REFUTED, "larger than estimated"),
        ((1.40, 1.02, 1.50), Claim("time_factor", 1.2, 1.5, "x", ""), INCONCLUSIVE, "noise floor"),
        ((2.00, 1.00, 3.00), FLOAT64, INCONCLUSIVE, "too wide"),
        # A claim starting at 1.0 is not confirmed by "no change".
        ((1.00, 0.98, 1.03), DDP, INCONCLUSIVE, "no measurable saving"),
        ((1.04, 1.02, 1.20), DDP, INCONCLUSIVE, "noise floor"),
        ((2.40, 2.30, 2.55), DDP, CONFIRMED, "overlaps"),
        ((0.75, 0.70, 0.80), DDP, REFUTED, "slower"),
        # A claim of no time saving (a tiny float64 model, 1x) is shown by an interval inside the noise band.
        ((1.00, 0.97, 1.03), Claim("time_factor", 1.0, 1.0, "x", ""), CONFIRMED, "no measurable difference"),
        ((0.98, 0.82, 1.18), Claim("time_factor", 1.0, 1.0, "x", ""), INCONCLUSIVE, "too wide to show it"),
        ((1.60, 1.50, 1.70), Claim("time_factor", 1.0, 1.0, "x", ""), REFUTED, "larger than estimated"),
        ((16 * 2**20, 16 * 2**20, 16 * 2**20), BYTES, CHECKED, "arithmetic"),
        ((17.6 * 2**20, 17.6 * 2**20, 17.6 * 2**20), BYTES, REFUTED, "larger"),
        ((4.1, 3.7, 4.6), LOADS, CONFIRMED, "overlaps"),
        ((0.8, 0.6, 1.0), LOADS, REFUTED, "smaller"),
        ((2.0, -1.0, 5.0), LOADS, INCONCLUSIVE, "too wide"),
    ],
)
def test_verdict_table(interval, claim, verdict, words):
    result = decide(Interval(*interval), claim)
    assert result.verdict == verdict, result.reason
    assert words in result.reason


def test_problems_noise_and_missing_claims_are_inconclusive():
    good = Interval(1.85, 1.80, 1.90)
    assert decide(good, FLOAT64, problem="timed out").verdict == INCONCLUSIVE
    assert decide(good, None).verdict == INCONCLUSIVE
    assert decide(None, FLOAT64).verdict == INCONCLUSIVE
    noisy = decide(good, FLOAT64, noise=0.3)
    assert noisy.verdict == INCONCLUSIVE and "noisy" in noisy.reason
    # Deterministic byte counts ignore timing noise.
    assert decide(stats.exact(16 * 2**20), BYTES, noise=0.5).verdict == CHECKED


def test_tolerance_is_the_width_of_agreement():
    measured = Interval(1.7, 1.65, 1.75)
    assert decide(measured, FLOAT64, tolerance=0.25).verdict == CONFIRMED
    assert decide(measured, FLOAT64, tolerance=0.0).verdict == REFUTED


@settings(max_examples=300, deadline=None)
@given(
    low=st.floats(0.2, 10),
    width=st.floats(0.0, 3.0),
    c_low=st.floats(0.5, 8),
    c_width=st.floats(0, 4),
    floor=st.sampled_from([1.05, 1.10]),
    tolerance=st.sampled_from([0.0, 0.25]),
)
def test_verdict_is_consistent_with_the_interval(low, width, c_low, c_width, floor, tolerance):
    measured = Interval(low * (1 + width / 2), low, low * (1 + width))
    claim = Claim("time_factor", c_low, c_low + c_width, "x", "")
    result = decide(measured, claim, floor=floor, tolerance=tolerance)
    band_low, band_high = stats.claim_band(claim, floor, tolerance)
    overlaps = measured.low <= band_high and measured.high >= band_low
    if result.verdict == CONFIRMED:
        assert overlaps
        assert measured.spread <= stats.MAX_SPREAD
        # A measured saving, whatever the claim's low end; or, for a claim of no
        # saving, an interval inside the noise band.
        no_saving_shown = (
            1.0 <= claim.low and claim.high <= floor and 1 / floor < measured.low <= measured.high <= floor
        )
        assert measured.low > floor or no_saving_shown
    elif result.verdict == REFUTED:
        assert not overlaps or measured.high < floor or measured.high < 1 / floor
    else:
        assert measured.spread > stats.MAX_SPREAD or measured.low <= floor


def test_order_alternates_a_b_b_a():
    assert order(["A", "B"], 3) == ["A", "B", "B", "A", "A", "B"]
    assert order(["a", "b", "c"], 2) == ["a", "b", "c", "c", "b", "a"]


def test_human_bytes():
    assert stats.human_bytes(512) == "512 B"
    assert stats.human_bytes(16 * 2**20) == "16.0 MiB"
    assert stats.human_bytes(-2048) == "-2.0 KiB"


def test_small_n_interval_covers_95_percent():
    """3 runs per variant with 5% run-to-run noise: the widened interval covers
    the true ratio about 95% of the time (the bare percentile bootstrap: ~80%)."""
    rng = random.Random(7)
    hits = trials = 0
    for _ in range(200):
        before = [[2.0 * math.exp(rng.gauss(0, 0.05))] for _ in range(3)]
        after = [[1.0 * math.exp(rng.gauss(0, 0.05))] for _ in range(3)]
        interval = stats.ratio_interval(before, after, resamples=200)
        trials += 1
        hits += interval.low <= 2.0 <= interval.high
    assert hits / trials >= 0.92


def test_t_interval_and_quantiles():
    assert stats.t_quantile(2) == pytest.approx(4.303)
    assert stats.t_quantile(2.7) == pytest.approx(4.303)  # rounded down: conservative
    assert stats.t_quantile(0.5) == math.inf
    assert 1.96 < stats.t_quantile(200) < 2.0
    assert stats.log_t_interval([1.0], [1.0, 2.0]) is None
    interval = stats.log_t_interval([2.0, 2.1, 1.9], [1.0, 1.05, 0.95])
    assert interval.low < 2.0 < interval.high


@pytest.mark.parametrize(
    "interval, estimate, verdict, words",
    [
        # The whole run's saving misses a 2-2.1x estimate: not "confirmed" against it.
        ((1.18, 1.12, 1.25), ("time_factor", 2.0, 2.1), INCONCLUSIVE, "not checked at this scale"),
        ((2.00, 1.90, 2.10), ("time_factor", 2.0, 2.1), CONFIRMED, "within the estimate"),
        ((4.00, 3.80, 4.20), ("time_factor", 2.0, 2.1), REFUTED, "larger than estimated"),
        # A claim starting at 1.0 needs a measured saving.
        ((1.00, 0.98, 1.02), ("time_factor", 1.0, 2.4), INCONCLUSIVE, "no measurable saving"),
        ((1.30, 1.25, 1.35), ("repeated_work", 9.0, 9.0), CONFIRMED, "23% of the run"),
        ((1.30, 1.25, 1.35), ("memory_bytes", 4096.0, 4096.0), INCONCLUSIVE, "not time"),
    ],
)
def test_run_records_judge_the_whole_run_against_the_finding_estimate(interval, estimate, verdict, words):
    from greenops_lint.finding import SavingsEstimate
    from greenops_lint.probe.script import against_estimate

    measured = Interval(*interval)
    saving = Claim("ratio", 1.05 * 1.001, math.inf, "x", "measurably faster")
    base = decide(measured, saving, floor=1.05)
    metric, low, high = estimate
    result = against_estimate(base, measured, SavingsEstimate(metric, low, high, "x", "", "cloud-vcpu-2"), 1.05, 0.25)
    assert result.verdict == verdict, result.reason
    assert words in result.reason


def test_summary_says_verdicts_judge_the_host_figures_not_the_configured_gpu():
    from greenops_lint.probe.report import summary

    records = [{"verdict": "confirmed", "hardware": "cloud-vcpu-2", "estimate_configured": {"hardware": "a100-80gb"}}]
    line = summary(records)
    assert "1 confirmed" in line and "those for a100-80gb are not checked by this run" in line
    assert "not checked" not in summary([{"verdict": "confirmed", "hardware": "cloud-vcpu-2"}])


def test_a_profile_measured_here_labels_its_float64_figure_as_cpu_measured():
    from greenops_lint.savings import float64_time_factor, get_hardware

    assert float64_time_factor(get_hardware("cloud-vcpu-2")).source == "measured on CPU"
    assert float64_time_factor(get_hardware("x86-server-cpu")).source == "datasheet"
