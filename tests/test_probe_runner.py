"""From raw variant runs to a record: CPU and CUDA clocks, NVML joules, problems."""

from __future__ import annotations

import random

from greenops_lint.finding import Finding, SavingsEstimate
from greenops_lint.probe.plans import Host, Plan
from greenops_lint.probe.runner import Outcome, analyse
from greenops_lint.probe.stats import Claim

ESTIMATE = SavingsEstimate("time_factor", 2.0, 2.0, "x", "H100: FP32 67 vs FP64 34 TFLOPS", "h100-sxm")
FINDING = Finding("train.py", 12, 5, 12, 20, "GO402", "cast-to-float64", "precision", "msg", estimate=ESTIMATE)


def _run(level, rng, cuda=False, joules=None, tensors=1000):
    walls = [level * (1 + rng.gauss(0, 0.01)) for _ in range(20)]
    series = {"wall": walls, "cpu": [w * 0.1 if cuda else w for w in walls]}
    if cuda:
        series["cuda_ms"] = [w * 1000 for w in walls]
    if joules is not None:
        series["energy"] = {"source": "nvml", "joules": joules * 20, "window_s": 1.2, "joules_per_sample": joules}
    return {"series": {"step": series}, "memory": {"tensors": tensors, "gpu_peak_allocated": tensors * 3}, "info": {}}


def _plan(clock="cpu"):
    return Plan(
        FINDING,
        "float64 vs float32 training step",
        "dtype",
        ("float64", "float32"),
        {},
        {},
        "literal",
        "MLP",
        "step",
        clock,
        "ratio",
        "step",
        Claim("time_factor", 2.0, 2.0, "x", "H100"),
    )


def test_cuda_runs_use_cuda_events_and_nvml_joules():
    rng = random.Random(0)
    outcome = Outcome(
        runs={
            "float64": [_run(0.02, rng, True, 6.0, 2000) for _ in range(3)],
            "float32": [_run(0.01, rng, True, 3.5) for _ in range(3)],
        },
        load={"foreign_load": 0.01, "steal_s": 0.0},
        order=["float64", "float32", "float32", "float64", "float64", "float32"],
    )
    host = Host(cuda=True, device_name="NVIDIA H100 80GB HBM3", profile="h100-sxm")
    record = analyse(_plan(), outcome, host, "cuda: NVIDIA H100 80GB HBM3", 0.25)
    assert record["measured"]["clock"] == "cuda"
    assert 1.9 < record["measured"]["median"] < 2.1
    assert record["verdict"] == "confirmed"
    assert record["energy_source"] == "nvml"
    assert record["joules"] == {"before": 6.0, "after": 3.5}
    assert record["energy_estimated"] is None
    assert record["bytes"]["before"]["gpu_peak_allocated"] == 6000
    assert record["order"] == "A B B A A B"
    assert record["noise_floor"] == 1.05


def test_cpu_runs_without_a_counter_have_no_joules_but_a_labelled_estimate():
    rng = random.Random(1)
    outcome = Outcome(
        runs={"float64": [_run(0.02, rng) for _ in range(3)], "float32": [_run(0.01, rng) for _ in range(3)]},
        load={"foreign_load": 0.3},
    )
    record = analyse(_plan(), outcome, Host(profile="cloud-vcpu-2", usable_cpus=2), "cpu", 0.25)
    assert record["measured"]["clock"] == "cpu"
    assert record["energy_source"] == "none" and record["joules"] == {"before": None, "after": None}
    assert record["energy_estimated"]["model"].startswith("estimated:")
    assert record["energy_estimated"]["before"] > record["energy_estimated"]["after"]
    assert record["noise_floor"] == 1.10  # a busy host widens the floor


def test_wall_clock_on_a_busy_host_and_problems_are_inconclusive():
    rng = random.Random(2)
    runs = {"float64": [_run(0.02, rng)], "float32": [_run(0.01, rng)]}
    busy = analyse(_plan("wall"), Outcome(runs=runs, load={"foreign_load": 0.8}), Host(), "cpu", 0.25)
    assert busy["verdict"] == "inconclusive" and "too busy" in busy["reason"]
    assert busy["measured"] is not None  # the figures are still reported
    timed_out = analyse(
        _plan(),
        Outcome(runs={"float64": [], "float32": []}, problem="timed out: ...", timed_out=True),
        Host(),
        "cpu",
        0.25,
    )
    assert timed_out["verdict"] == "inconclusive" and timed_out["timed_out"] and timed_out["measured"] is None
