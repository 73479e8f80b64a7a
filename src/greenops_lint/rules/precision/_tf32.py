"""GO404's estimate: the TF32 gain of a float32 training step on the configured GPU
(the hardware table's TF32:FP32 peak ratio, capped by the measured end-to-end
anchor), and what makes a finding material."""

from __future__ import annotations

import re

from greenops_lint.analysis.ast_index import TINY_MATMUL_WEIGHTS, is_tiny_model
from greenops_lint.finding import SavingsEstimate
from greenops_lint.savings import SOURCE_CITED

# -- estimate (`## Estimate`) ------------------------------------------------------------------------
# Hugging Face, transformers#15026 (stas00): t5-base fine-tuning on an A100, train samples/s.
T5_FP32_SAMPLES_S = 93.68
T5_TF32_SAMPLES_S = 210.53
END_TO_END_HIGH = T5_TF32_SAMPLES_S / T5_FP32_SAMPLES_S  # 2.25x: the end-to-end anchor
# A convolutional model: cuDNN already runs its convolutions in TF32, only the head's matmuls gain; at most
# this much (our bound, not a measurement), which is also the materiality threshold.
CONV_MODEL_HIGH = 1.1
SOURCE = "transformers#15026 (t5-base on A100: fp32 93.7 -> tf32 210.5 samples/s)"

_HEAVY_TEXT = re.compile(r"Transformer|Attention|LSTM|GRU|from_pretrained|Embedding|einsum|bmm")
_BATCH_SIZES = re.compile(r"\bbatch_size\s*=\s*(\d+)\b")
# At most this batch (the smallest literal batch_size: the training one; evaluation batches are larger) for a
# model without attention or recurrent layers: launch-bound, ~1x.
SMALL_BATCH = 32
# Layers cuDNN runs, in TF32 by default (`torch.backends.cudnn.allow_tf32` is True; it also governs
# cuDNN's RNN kernels, `torch.backends.cudnn.rnn.fp32_precision` in the newer API): convolutions and
# LSTM/GRU/RNN cells. The matmul flag GO404 reports does not touch them.
_CUDNN_TEXT = re.compile(r"nn\.Conv[123]d|torchvision\.models|timm\.create_model|resnet|ResNet|nn\.(LSTM|GRU|RNN)\b")
# A Linear classifier head (or an embedding lookup, a gather) does not make a cuDNN model a matmul model;
# these do.
_MATMUL_BEYOND_HEAD = re.compile(
    r"nn\.(Transformer\w*|MultiheadAttention)\b|from_pretrained|Attention|matmul|\bbmm\b|einsum"
)


def tf32_estimate(ctx) -> tuple[SavingsEstimate, bool, str]:
    """(estimate, material, words for the message)."""
    hardware = ctx.hardware
    conv_only = bool(_CUDNN_TEXT.search(ctx.text)) and not _MATMUL_BEYOND_HEAD.search(ctx.text)
    assumptions: list[str] = []
    if hardware.is_generic:
        low, high = 1.0, END_TO_END_HIGH
        basis = (
            f"Ampere and newer GPUs run TF32 on tensor cores (A100: 156 vs 19.5 TFLOPS FP32 peak); end to end "
            f"{SOURCE}, {END_TO_END_HIGH:.2f}x; 1x on V100/T4 (no TF32)"
        )
        assumptions.append(hardware.assumption)
        words = ""
    elif hardware.kind == "gpu" and hardware.tf32 > hardware.fp32 > 0:
        peak = hardware.tf32 / hardware.fp32
        low, high = 1.0, min(END_TO_END_HIGH, peak)
        basis = (
            f"{hardware.label}: TF32 {hardware.tf32:g} vs FP32 {hardware.fp32:g} TFLOPS peak ({peak:.1f}x on the "
            f"matmuls; {hardware.source}); end to end at most {END_TO_END_HIGH:.2f}x, {SOURCE}"
        )
        words = f"; up to {high:.2g}x on {hardware.label}"
    else:
        low = high = 1.0
        basis = (
            f"{hardware.label} has no TF32 tensor cores faster than its FP32 units: no saving there; {SOURCE} on A100"
        )
        words = f"; no TF32 gain on {hardware.label}, only on Ampere and newer"
    if conv_only and high > 1.0:
        high = min(high, CONV_MODEL_HIGH)
        assumptions.append(
            "a convolutional or recurrent model: cuDNN already runs convolutions and LSTM/GRU cells in TF32 by "
            "default, only the few matmuls (the classifier head) gain"
        )
        words = "; a convolutional or recurrent model, whose cuDNN layers already use TF32"
    if high > CONV_MODEL_HIGH and is_tiny_model(ctx.analysis("literal_sizes"), ctx.text):
        high = min(high, CONV_MODEL_HIGH)
        assumptions.append(
            f"a tiny model (every matmul layer at most {TINY_MATMUL_WEIGHTS:,} weights, literal sizes): the step "
            "is bound by kernel launches, not matmul throughput"
        )
        words = "; a tiny model whose step is bound by kernel launches: TF32 gains little"
    batches = [int(b) for b in _BATCH_SIZES.findall(ctx.text)]
    if batches and min(batches) <= SMALL_BATCH and not _HEAVY_TEXT.search(ctx.text) and high > 1.0:
        high = min(high, CONV_MODEL_HIGH)
        assumptions.append(
            f"training batches of at most {SMALL_BATCH} (the smallest literal batch_size) for a model without attention or recurrent "
            "layers: the step is bound by kernel launches, not matmul throughput"
        )
        words = f"; batches of {min(batches)} for a model without attention: TF32 gains little"
    assumptions.append("the training step is dominated by float32 matmuls (linear, attention, recurrent layers)")
    estimate = SavingsEstimate(
        metric="time_factor",
        low=round(low, 2),
        high=round(high, 2),
        unit="x",
        basis=basis,
        hardware=hardware.key,
        assumptions=tuple(a for a in assumptions if a),
        source=SOURCE_CITED,
    )
    material = high > CONV_MODEL_HIGH
    return estimate, material, words
