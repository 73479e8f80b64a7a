"""The savings model: hardware profiles, grid carbon, and per-waste-type estimates.

Each rule turns what it found into a `SavingsEstimate` with the helpers here, so
that the numbers, their basis and their sources live in one place. The data
files under `data/` cite a source for every figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Optional

from greenops_lint.finding import SavingsEstimate
from greenops_lint.tomlcompat import tomllib

DEFAULT_HARDWARE = "generic-gpu"


@dataclass(frozen=True)
class HardwareProfile:
    key: str
    kind: str
    label: str
    source: str
    fp64: float = 0.0
    fp32: float = 0.0
    tf32: float = 0.0
    bf16: float = 0.0
    fp16: float = 0.0
    fp64_tc: float = 0.0
    memory_gb: float = 0.0
    bandwidth_gbs: float = 0.0
    tdp_w: float = 0.0
    assumption: str = ""
    tdp_assumption: str = ""
    # Used by the probe to describe the machine it measured on; not listed by `hardware`.
    internal: bool = False

    @property
    def is_generic(self) -> bool:
        return self.key == DEFAULT_HARDWARE

    def fp64_slowdown(self) -> float:
        """FP32 / FP64 peak throughput: how much slower compute-bound float64 is."""
        return self.fp32 / self.fp64 if self.fp64 else 0.0


@dataclass(frozen=True)
class GridRegion:
    key: str
    name: str
    intensity: float  # gCO2e/kWh
    year: int
    source: str


def _load(name: str) -> dict:
    with resources.files("greenops_lint.data").joinpath(name).open("rb") as handle:
        return tomllib.load(handle)


@lru_cache(maxsize=None)
def hardware_table() -> dict[str, HardwareProfile]:
    return {key: HardwareProfile(key=key, **values) for key, values in _load("hardware.toml").items()}


@lru_cache(maxsize=None)
def grid_table() -> dict[str, GridRegion]:
    return {key: GridRegion(key=key, **values) for key, values in _load("grid.toml").items()}


def get_hardware(key: Optional[str]) -> HardwareProfile:
    return hardware_table()[key or DEFAULT_HARDWARE]


DEFAULT_REGION = "WORLD"
# Share of the board power limit that training really draws on average: an
# assumption, not a sourced constant (real draw is workload-dependent; the
# probe reads NVML energy counters where they exist).
DEFAULT_UTILISATION = 0.7


def _gpu_profiles() -> list[HardwareProfile]:
    return [p for p in hardware_table().values() if p.kind == "gpu" and p.fp64]


def _round(value: float) -> float:
    return round(value, 1) if value < 10 else float(round(value))


# Memory-bound operations move twice the bytes in float64 on any device.
FLOAT64_BYTES_RATIO = 2.0


def float64_time_factor(hardware: HardwareProfile) -> SavingsEstimate:
    """How much slower float64 work is than float32 on `hardware`.

    Memory-bound ops pay the bytes ratio (2x); compute-bound ops pay the
    FP32:FP64 peak-throughput ratio of the device. The range spans the two.
    """
    if hardware.is_generic:
        ratios = [p.fp64_slowdown() for p in _gpu_profiles()]
        low, high = FLOAT64_BYTES_RATIO, _round(max(ratios))
        basis = (
            "FP32:FP64 peak throughput of NVIDIA GPUs: 1:2 on V100/A100/H100/H200, "
            "1:32 on T4, 1:64 on A10/L4/RTX cards (datasheets); memory-bound ops 2x (bytes)"
        )
        assumptions = (hardware.assumption,)
    else:
        low = FLOAT64_BYTES_RATIO
        high = _round(max(FLOAT64_BYTES_RATIO, hardware.fp64_slowdown()))
        basis = (
            f"{hardware.label}: FP32 {hardware.fp32:g} vs FP64 {hardware.fp64:g} TFLOPS peak "
            f"for compute-bound ops, 2x bytes for memory-bound ops ({hardware.source})"
        )
        assumptions = ("the affected work runs in float32 after the fix",)
    return SavingsEstimate(
        metric="time_factor",
        low=low,
        high=high,
        unit="x",
        basis=basis,
        hardware=hardware.key,
        assumptions=assumptions,
    )


def float64_cost_words(hardware: HardwareProfile) -> str:
    """The cost of float64 in a few words, for rule messages."""
    if hardware.is_generic:
        return "2x memory; 2x slower on V100/A100/H100, up to 64x on T4/A10/L4/RTX GPUs"
    return f"2x memory; up to {_round(max(2.0, hardware.fp64_slowdown())):g}x slower on {hardware.label}"


def extra_bytes_estimate(extra_bytes: int, basis: str, hardware: HardwareProfile) -> SavingsEstimate:
    return SavingsEstimate(
        metric="memory_bytes",
        low=float(extra_bytes),
        high=float(extra_bytes),
        unit="bytes",
        basis=basis,
        hardware=hardware.key,
        assumptions=("sizes taken from literal shapes in the code",),
    )
