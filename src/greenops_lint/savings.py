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

from greenops_lint.finding import (  # noqa: F401 - the source labels, re-exported for rules
    SOURCE_CITED,
    SOURCE_CODE,
    SOURCE_COUNTED,
    SOURCE_CPU,
    SOURCE_DATASHEET,
    SOURCE_DERIVED,
    SavingsEstimate,
)
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

    @property
    def measured_here(self) -> bool:
        """Its rates were measured on this project's machine (a CPU profile the
        probe uses), not read from a datasheet."""
        return self.source.lower().startswith("measured")

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


# Fixed cost of one operator in eager PyTorch, the same in either dtype: the
# framework's dispatch plus, on a GPU, the kernel launch. An assumption (eager
# PyTorch ops cost a few to ~10 us of host time each; CUDA launches ~5 us),
# chosen so that a 4-wide model is overhead-bound, as the probe measures.
OP_OVERHEAD_S = {"gpu": 10e-6, "cpu": 5e-6}
# On CPU, float64 convolutions leave oneDNN: 3.3-3.4x per training step vs
# 1.8-1.9x for GEMMs on the same 2-vCPU EPYC (probe-research.md 3.a), a further
# ~1.8x over the peak-rate ratio.
CPU_FLOAT64_CONV_PENALTY = 1.8
# Batch sizes spanned when the code has no literal one.
UNSIZED_BATCHES = (32, 256)


@dataclass(frozen=True)
class Workload:
    """What the float64 work is, as far as the code says.

    `kind`: `mlp` (matrix multiplies), `conv` (convolutions) or `unknown`.
    `linears` are literal (in, out) feature sizes, `convs` literal
    (in_channels, out_channels, kernel) triples, `image` the input's (H, W).
    `framework`: `torch` (matmuls in full FP32 unless TF32 is switched on,
    convolutions in TF32 by default: `torch.backends.cudnn.allow_tf32`),
    `tensorflow` or `jax` (TF32 for both on Ampere and newer by default).
    `tf32_matmul`: the code switches TF32 on for matmuls
    (`set_float32_matmul_precision("high")`, `allow_tf32 = True`).
    """

    kind: str = "unknown"
    linears: tuple = ()
    convs: tuple = ()
    image: tuple = (32, 32)
    batch: Optional[int] = None
    framework: str = "torch"
    tf32_matmul: bool = False

    @property
    def sized(self) -> bool:
        return bool(self.linears or self.convs)

    def words(self) -> str:
        if self.convs:
            chans = "-".join(str(c[0]) for c in self.convs) + f"-{self.convs[-1][1]}"
            text = f"CNN {chans} channels on {self.image[0]}x{self.image[1]} inputs"
        elif self.linears:
            text = "MLP " + "-".join(str(d) for d in [self.linears[0][0]] + [b for _, b in self.linears])
        else:
            return {
                "mlp": "a model of matrix multiplies, sizes not literal",
                "conv": "a convolutional model, sizes not literal",
            }.get(self.kind, "a model whose layers are not literal in the code")
        batch = (
            f"batch {self.batch}" if self.batch else f"batch {UNSIZED_BATCHES[0]}-{UNSIZED_BATCHES[1]} (not literal)"
        )
        return f"{text}, {batch} (literal shapes)"


def _rates(hardware: HardwareProfile, workload: Workload) -> dict:
    """Peak rates (FLOP/s) for the float32 baseline and for float64: `low`
    assumes float64 kernels use the FP64 tensor cores where the GPU has them,
    `high` the FP64 vector units."""
    gpu = hardware.kind == "gpu"
    tf32_default = workload.framework in ("tensorflow", "jax")
    tf32 = hardware.tf32 if gpu and hardware.tf32 else 0.0
    matmul32 = tf32 if tf32 and (workload.tf32_matmul or tf32_default) else hardware.fp32
    conv32 = tf32 or hardware.fp32
    f64_tc = hardware.fp64_tc or hardware.fp64
    conv64_high = hardware.fp64 / (CPU_FLOAT64_CONV_PENALTY if not gpu else 1.0)
    return {
        "matmul32": matmul32 * 1e12,
        "conv32": conv32 * 1e12,
        "low": {"matmul64": f64_tc * 1e12, "conv64": f64_tc * 1e12 if gpu else hardware.fp64 * 1e12},
        "high": {"matmul64": hardware.fp64 * 1e12, "conv64": conv64_high * 1e12},
    }


def _kernels(workload: Workload, batch: int) -> list[tuple[str, float, float]]:
    """(kind, FLOPs, elements moved) per kernel of one SGD-with-momentum
    training step: forward and two backward GEMMs/convolutions per layer,
    the activation (and BatchNorm after a convolution) forward and backward,
    and the optimizer's update of the weights."""
    out = []
    for n, m in workload.linears:
        gemm = (2.0 * batch * n * m, float(n * m + batch * (n + m)))
        out += [("matmul", *gemm)] * 3
        out += [("elementwise", 0.0, 2.0 * batch * m), ("elementwise", 0.0, 3.0 * batch * m)]
        out.append(("elementwise", 0.0, 5.0 * n * m))
    h, w = workload.image
    for c_in, c_out, k in workload.convs:
        pixels = batch * h * w
        conv = (2.0 * pixels * c_in * c_out * k * k, float(pixels * (c_in + c_out) + c_in * c_out * k * k))
        out += [("conv", *conv)] * 3
        # BatchNorm and activation, forward (2 reads/writes) and backward (3).
        out += [("elementwise", 0.0, 2.0 * pixels * c_out), ("elementwise", 0.0, 3.0 * pixels * c_out)] * 2
        out.append(("elementwise", 0.0, 5.0 * c_in * c_out * k * k))
    return out


def _step_seconds(kernels, hardware: HardwareProfile, rates: dict, float64: bool, case: str) -> float:
    overhead = OP_OVERHEAD_S["gpu" if hardware.kind == "gpu" else "cpu"]
    size = 8 if float64 else 4
    bandwidth = hardware.bandwidth_gbs * 1e9
    total = 0.0
    for kind, flops, elements in kernels:
        if kind == "elementwise":
            compute = 0.0
        elif float64:
            compute = flops / rates[case]["matmul64" if kind == "matmul" else "conv64"]
        else:
            compute = flops / rates["matmul32" if kind == "matmul" else "conv32"]
        total += max(overhead, compute, elements * size / bandwidth)
    return total


def _ratio_range(hardware: HardwareProfile, workload: Workload) -> tuple[float, float, str]:
    """(low, high, how) of the float64/float32 step-time ratio on one profile."""
    rates = _rates(hardware, workload)
    r = {"matmul32": rates["matmul32"] / 1e12, "conv32": rates["conv32"] / 1e12}
    gemm_hi = rates["matmul32"] / rates["high"]["matmul64"]
    gemm_lo = rates["matmul32"] / rates["low"]["matmul64"]
    conv_lo = rates["conv32"] / rates["low"]["conv64"]
    conv_hi = rates["conv32"] / rates["high"]["conv64"]
    matmul_words = f"{'TF32' if r['matmul32'] != hardware.fp32 else 'FP32'} {r['matmul32']:g}"
    conv_words = f"{'TF32' if r['conv32'] != hardware.fp32 else 'FP32'} {r['conv32']:g}"
    fp64_words = (
        f"FP64 tensor cores {hardware.fp64_tc:g} / vector {hardware.fp64:g}"
        if hardware.fp64_tc
        else f"FP64 {hardware.fp64:g}"
    )
    if workload.sized:
        batches = (workload.batch,) if workload.batch else UNSIZED_BATCHES
        ratios = []
        for batch in batches:
            kernels = _kernels(workload, batch)
            base = _step_seconds(kernels, hardware, rates, False, "low")
            for case in ("low", "high"):
                ratios.append(_step_seconds(kernels, hardware, rates, True, case) / base)
        low, high = min(ratios), max(ratios)
        compute = []
        if workload.linears:
            compute.append(f"matmuls at {matmul_words} vs {fp64_words} TFLOPS")
        if workload.convs:
            compute.append(f"convolutions at {conv_words} vs {fp64_words} TFLOPS")
        how = (
            f"roofline of every kernel of a training step of the {workload.words()}: {', '.join(compute)}, "
            f"element-wise and optimizer ops at {hardware.bandwidth_gbs:g} GB/s (2x bytes), "
            f"{OP_OVERHEAD_S['gpu' if hardware.kind == 'gpu' else 'cpu'] * 1e6:g} us fixed cost per op"
        )
        return low, high, how
    cases = ["overhead-bound small models ~1x", f"memory-bound ops {FLOAT64_BYTES_RATIO:g}x (bytes)"]
    low, high = 1.0, FLOAT64_BYTES_RATIO
    if workload.kind in ("mlp", "unknown"):
        cases.append(f"compute-bound matmuls {_span(gemm_lo, gemm_hi)}x ({matmul_words} vs {fp64_words} TFLOPS)")
        high = max(high, gemm_hi)
        low = min(low, gemm_lo)
    if workload.kind in ("conv", "unknown"):
        penalty = (
            ""
            if hardware.kind == "gpu"
            else f", float64 convolutions leave oneDNN: a further {CPU_FLOAT64_CONV_PENALTY:g}x measured on CPU"
        )
        cases.append(f"convolutions {_span(conv_lo, conv_hi)}x ({conv_words} vs {fp64_words} TFLOPS{penalty})")
        high = max(high, conv_hi)
    return low, high, "; ".join(cases)


def _span(low: float, high: float) -> str:
    low, high = _round(low), _round(high)
    return f"{low:g}" if low == high else f"{low:g}-{high:g}"


def float64_time_factor(hardware: HardwareProfile, workload: Optional[Workload] = None) -> SavingsEstimate:
    """How much slower a training step is in float64 than in float32 on `hardware`.

    The ratio depends on the device and on the work: GEMMs on GPUs with FP64
    tensor cores (A100, H100, H200) run at the FP32 rate (~1x), convolutions
    compare with cuDNN's TF32 default (8-16x on A100), memory-bound ops move
    twice the bytes (2x), overhead-bound small models cost ~1x anywhere. With
    literal layer sizes (`workload`) a per-kernel roofline gives the range;
    without them the range spans the cases and says which is which.
    """
    workload = workload or Workload()
    if hardware.is_generic:
        spans = [(p, *_ratio_range(p, workload)) for p in _gpu_profiles()]
        low = min(s[1] for s in spans)
        high = max(s[2] for s in spans)
        highest = max(spans, key=lambda s: s[2])[0]
        basis = (
            f"range over the GPU profiles for {workload.words()}: from {_round(low):g}x to {_round(high):g}x "
            f"(on {highest.label}); datasheets: FP64 at 1:2 of FP32 with FP64 tensor cores as fast as FP32 on "
            "A100/H100/H200, 1:32 on T4, 1:64 on A10/L4/RTX cards; TF32 convolutions by default on Ampere and newer"
        )
        assumptions = (hardware.assumption,)
    else:
        low, high, how = _ratio_range(hardware, workload)
        basis = f"{hardware.label}: {how} ({hardware.source})"
        assumptions = ["the affected work runs in float32 after the fix"]
        if workload.sized:
            assumptions.append("kernels reach the same share of peak in either dtype; stride 1, no pooling")
        else:
            assumptions.append("the layer sizes are not literal in the code: the range spans the cases")
        if hardware.kind == "gpu" and workload.framework == "torch":
            assumptions.append(
                "float32 convolutions use TF32 (torch.backends.cudnn.allow_tf32 defaults to True); float32 matmuls "
                + (
                    "use TF32 (switched on in the code)"
                    if workload.tf32_matmul
                    else "do not (PyTorch's default since 1.12)"
                )
            )
        assumptions = tuple(assumptions)
    low, high = _round(low), _round(high)
    return SavingsEstimate(
        metric="time_factor",
        low=min(low, high),
        high=high,
        unit="x",
        basis=basis,
        hardware=hardware.key,
        assumptions=assumptions,
        source=SOURCE_CPU if hardware.measured_here else SOURCE_DATASHEET,
    )


def float64_cost_words(hardware: HardwareProfile, workload: Optional[Workload] = None) -> str:
    """The cost of float64 in a few words, for rule messages."""
    estimate = float64_time_factor(hardware, workload)
    span = _span(estimate.low, estimate.high)
    if hardware.is_generic:
        return f"2x memory; {span}x slower depending on the GPU and the work"
    return f"2x memory; {span}x slower on {hardware.label}"


def extra_bytes_estimate(extra_bytes: int, basis: str, hardware: HardwareProfile) -> SavingsEstimate:
    return SavingsEstimate(
        metric="memory_bytes",
        low=float(extra_bytes),
        high=float(extra_bytes),
        unit="bytes",
        basis=basis,
        hardware=hardware.key,
        assumptions=("sizes taken from literal shapes in the code",),
        source=SOURCE_CODE,
    )
