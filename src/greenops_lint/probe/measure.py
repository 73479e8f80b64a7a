"""Measurement inside a variant's process: the timing loop, memory and energy.

On CPU each sample records wall time and the process's CPU time; with CUDA it
also records the step's time between two CUDA events. An energy counter
(NVML or RAPL) is read around the whole timed window, which is stretched to at
least `ENERGY_WINDOW_S` because the counters update only every 20-100 ms.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Optional

ENERGY_WINDOW_S = 1.0


def _status_kib(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class RssPeak:
    """Peak resident set of this process above its level at `start()`.

    A forked process inherits its parent's high-water mark; writing 5 to
    /proc/self/clear_refs resets it (Linux >= 4.0)."""

    def __init__(self) -> None:
        self.base = 0

    def start(self) -> "RssPeak":
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
        except OSError:
            pass
        self.base = (_status_kib("VmRSS") or 0) * 1024
        return self

    def peak_delta(self) -> Optional[int]:
        peak = _status_kib("VmHWM")
        return None if peak is None else max(0, peak * 1024 - self.base)


class EnergyWindow:
    """Joules over a window from a counter with `read()` and `joules(a, b)`."""

    def __init__(self, counter: Any, source: str, clock: Callable[[], float] = time.perf_counter) -> None:
        self.counter, self.source, self.clock = counter, source, clock
        self._start = None
        self._t0 = 0.0

    def begin(self) -> None:
        self._t0 = self.clock()
        self._start = self.counter.read()

    def end(self) -> tuple[float, float]:
        """(joules, seconds) since `begin()`."""
        after = self.counter.read()
        return self.counter.joules(self._start, after), self.clock() - self._t0


def sample_loop(
    step: Callable[[], Any],
    *,
    min_time: float,
    min_samples: int = 5,
    max_samples: int = 200,
    warmup: int = 2,
    torch: Any = None,
    cuda: bool = False,
    energy: Optional[EnergyWindow] = None,
    clock: Callable[[], float] = time.perf_counter,
    cpu_clock: Callable[[], float] = time.process_time,
    min_sample_s: float = 0.0,
    on_sample: Optional[Callable[[int], None]] = None,
) -> dict:
    """Run `step` after `warmup` calls until `min_time` seconds and
    `min_samples` samples (and, with an energy counter, `ENERGY_WINDOW_S`).

    With `min_sample_s`, a sample repeats the step often enough to last that
    long (short steps are otherwise dominated by timer and scheduler noise);
    its times are per step. `on_sample(reps)` is called before the first
    sample (with 0) and after each one.

    Returns {"wall": [...], "cpu": [...], "reps": n, "cuda_ms": [...]?, "energy": {...}?}.
    """
    for _ in range(warmup):
        step()
    reps = 1
    if min_sample_s > 0:
        # On CUDA a step only queues kernels: synchronise around it, or the
        # calibration times the launch and repeats far too often.
        if cuda:
            torch.cuda.synchronize()
        w0 = clock()
        step()
        if cuda:
            torch.cuda.synchronize()
        once = clock() - w0
        reps = max(1, min(10000, int(min_sample_s / once) + 1)) if once > 0 else 1
    if cuda:
        torch.cuda.synchronize()
    if on_sample is not None:
        on_sample(0)
    if energy is not None:
        min_time = max(min_time, ENERGY_WINDOW_S)
        max_samples = max(max_samples, 100000)
        energy.begin()
    walls: list[float] = []
    cpus: list[float] = []
    events: list[tuple[Any, Any]] = []
    started = clock()
    while len(walls) < max_samples and (len(walls) < min_samples or clock() - started < min_time):
        if cuda:
            begin_event = torch.cuda.Event(enable_timing=True)
            end_event = torch.cuda.Event(enable_timing=True)
            begin_event.record()
        w0, c0 = clock(), cpu_clock()
        for _ in range(reps):
            step()
        if cuda:
            end_event.record()
            end_event.synchronize()
            events.append((begin_event, end_event))
        walls.append((clock() - w0) / reps)
        cpus.append((cpu_clock() - c0) / reps)
        if on_sample is not None:
            on_sample(reps)
    result: dict = {"wall": walls, "cpu": cpus, "reps": reps}
    if cuda:
        result["cuda_ms"] = [b.elapsed_time(e) / reps for b, e in events]
    if energy is not None:
        if cuda:
            torch.cuda.synchronize()
        joules, seconds = energy.end()
        result["energy"] = {
            "source": energy.source,
            "joules": joules,
            "window_s": seconds,
            "joules_per_sample": joules / (len(walls) * reps) if walls else None,
        }
    return result


def gpu_memory(torch: Any) -> dict:
    return {
        "gpu_peak_allocated": int(torch.cuda.max_memory_allocated()),
        "gpu_peak_reserved": int(torch.cuda.max_memory_reserved()),
    }


def pss_of_tree(pid: Optional[int] = None) -> int:
    """Proportional set size of a process and its direct children, in bytes:
    unlike RSS, shared copy-on-write pages of forked workers count once."""
    pid = pid or os.getpid()
    pids = [pid]
    try:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat", encoding="utf-8") as handle:
                        text = handle.read()
                    if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
                        pids.append(int(entry))
                except (OSError, ValueError):
                    continue
    except OSError:
        return 0
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup", encoding="utf-8") as handle:
                for line in handle:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
    return total
