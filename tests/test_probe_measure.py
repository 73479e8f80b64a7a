"""The timing loop: CPU clocks for real, CUDA events and energy windows through fakes."""

from __future__ import annotations

import time
import types

import pytest

from greenops_lint.probe import measure
from greenops_lint.probe.measure import EnergyWindow, RssPeak, sample_loop


def test_cpu_samples_record_wall_and_cpu_time():
    result = sample_loop(lambda: sum(range(20000)), min_time=0.02, min_samples=5, warmup=1)
    assert len(result["wall"]) == len(result["cpu"]) >= 5
    assert all(w > 0 for w in result["wall"]) and all(c >= 0 for c in result["cpu"])
    assert "cuda_ms" not in result and "energy" not in result


def test_short_steps_are_repeated_within_a_sample():
    calls = []
    # A 0.3 s sample holds several 1 ms sleeps even on a heavily loaded machine.
    result = sample_loop(
        lambda: calls.append(time.sleep(0.001)), min_time=0.0, min_samples=3, warmup=0, min_sample_s=0.3
    )
    assert result["reps"] >= 2
    assert len(calls) == 1 + 3 * result["reps"]  # one calibration call, then the samples
    # Per step, not per sample: each sample holds `reps` sleeps of 1 ms. No tight upper
    # bound: on a loaded machine one sleep can take several ms.
    assert all(w > 0.0005 for w in result["wall"])


class FakeEvent:
    def __init__(self, clock, enable_timing=False):
        assert enable_timing
        self.clock, self.at = clock, None

    def record(self):
        self.at = self.clock["t"]

    def synchronize(self):
        self.clock["synced"] += 1

    def elapsed_time(self, other):
        return (other.at - self.at) * 1000.0


def fake_torch(clock):
    cuda = types.SimpleNamespace(
        Event=lambda enable_timing=False: FakeEvent(clock, enable_timing),
        synchronize=lambda: clock.__setitem__("device_synced", clock["device_synced"] + 1),
        max_memory_allocated=lambda: 123,
        max_memory_reserved=lambda: 456,
    )
    return types.SimpleNamespace(cuda=cuda)


class FakeCounter:
    """An energy counter that reads 50 J per second of the fake clock."""

    def __init__(self, clock):
        self.clock = clock

    def read(self):
        return [int(self.clock["t"] * 50_000)]

    def joules(self, before, after):
        return (after[0] - before[0]) / 1000.0


def test_cuda_events_and_an_energy_window_of_at_least_one_second():
    clock = {"t": 0.0, "synced": 0, "device_synced": 0}
    torch = fake_torch(clock)

    def step():
        clock["t"] += 0.01  # a 10 ms kernel

    def now():
        return clock["t"]

    energy = EnergyWindow(FakeCounter(clock), "nvml", clock=now)
    result = sample_loop(
        step,
        min_time=0.05,
        min_samples=3,
        max_samples=10,
        warmup=2,
        torch=torch,
        cuda=True,
        energy=energy,
        clock=now,
        cpu_clock=now,
    )
    # The window was stretched to 1 s although min_time was 0.05 s and max_samples 10.
    assert len(result["wall"]) >= 100
    assert result["cuda_ms"][0] == pytest.approx(10.0)
    assert clock["synced"] == len(result["wall"])
    assert clock["device_synced"] >= 2
    assert result["energy"]["source"] == "nvml"
    assert result["energy"]["window_s"] >= measure.ENERGY_WINDOW_S
    assert result["energy"]["joules_per_sample"] == pytest.approx(0.5, rel=0.05)  # 50 W x 10 ms
    assert measure.gpu_memory(torch) == {"gpu_peak_allocated": 123, "gpu_peak_reserved": 456}


def test_peak_rss_above_the_start():
    peak = RssPeak().start()
    block = bytearray(64 * 1024 * 1024)
    block[::4096] = b"x" * len(block[::4096])
    assert peak.peak_delta() >= 48 * 1024 * 1024
    del block


def test_pss_of_this_process():
    assert measure.pss_of_tree() > 0
