"""GO404's estimates: the TF32 gain of a float32 training step on the configured GPU
(the hardware table's TF32:FP32 peak ratio, capped by the end-to-end anchor measured
on an A100), the gain a cuDNN switch-off forgoes (convolutions and RNNs only), and
what makes a finding material."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

import libcst as cst

from greenops_lint.analysis.ast_index import TINY_MATMUL_WEIGHTS, is_tiny_model
from greenops_lint.finding import Fix, SavingsEstimate
from greenops_lint.savings import SOURCE_CITED, SOURCE_DATASHEET, SOURCE_DERIVED, hardware_table

# -- the switches --------------------------------------------------------------------------------------
MATMUL, CUDNN = "matmul", "cudnn"
BOTH = frozenset({MATMUL, CUDNN})
# Each TF32 switch and what it governs: the matmul flag (cuBLAS), cuDNN's (convolutions and RNNs), or both.
TF32_SETTINGS = {
    "torch.backends.cuda.matmul.allow_tf32": frozenset({MATMUL}),
    "torch.backends.cuda.matmul.fp32_precision": frozenset({MATMUL}),
    "torch.backends.cudnn.allow_tf32": frozenset({CUDNN}),
    "torch.backends.cudnn.fp32_precision": frozenset({CUDNN}),
    "torch.backends.cudnn.conv.fp32_precision": frozenset({CUDNN}),
    "torch.backends.cudnn.rnn.fp32_precision": frozenset({CUDNN}),
    "torch.backends.fp32_precision": BOTH,
}


@dataclass
class Switch:
    """A statement of the module that switches TF32 off."""

    node: cst.CSTNode
    statement: Optional[cst.CSTNode]
    words: str
    fix: Optional[Fix]
    scope: frozenset = BOTH  # what it switches off: the matmuls, cuDNN's layers, or both


def highest_precision_switch(node: cst.Call, string: cst.SimpleString, statement) -> Switch:
    """`torch.set_float32_matmul_precision("highest")`, fixed to "high"."""
    fix = Fix(
        string,
        lambda updated: updated.with_changes(value=f"{updated.prefix}{updated.quote}high{updated.quote}"),
        safe=False,
        title='Use set_float32_matmul_precision("high")',
    )
    return Switch(node, statement, 'torch.set_float32_matmul_precision("highest")', fix, frozenset({MATMUL}))


def setting_switch(node: cst.Assign, qualified: str, value, statement) -> Switch:
    """`<a TF32_SETTINGS flag> = False` or `= "ieee"`, fixed to True or "tf32"."""
    words = f"{qualified} = {value!r}".replace("'", '"')
    replacement = cst.Name("True") if value is False else cst.SimpleString('"tf32"')
    fix = Fix(node.value, lambda _updated, new=replacement: new, safe=False, title="Allow TF32")
    return Switch(node, statement, words, fix, TF32_SETTINGS[qualified])


def insert_matmul_precision_fix(text: str, loop_node: cst.CSTNode) -> Optional[Fix]:
    """Insert `torch.set_float32_matmul_precision("high")` before the training loop."""
    if not re.search(r"^\s*import torch\s*$", text, re.MULTILINE):
        return None  # `torch` is not bound to the module by that name

    def insert(updated: cst.CSTNode):
        call = cst.parse_statement('torch.set_float32_matmul_precision("high")\n')
        call = call.with_changes(leading_lines=updated.leading_lines)
        return cst.FlattenSentinel([call, updated.with_changes(leading_lines=())])

    return Fix(loop_node, insert, safe=False, title='Insert torch.set_float32_matmul_precision("high")')


# -- estimate (`## Estimate`) ------------------------------------------------------------------------
# Hugging Face, transformers#15026 (stas00): t5-base fine-tuning on an A100, train samples/s.
T5_FP32_SAMPLES_S = 93.68
T5_TF32_SAMPLES_S = 210.53
END_TO_END_HIGH = T5_TF32_SAMPLES_S / T5_FP32_SAMPLES_S  # 2.25x: the end-to-end anchor
# A convolutional model: cuDNN already runs its convolutions in TF32, only the head's matmuls gain; at most
# this much (our bound, not a measurement), which is also the materiality threshold.
CONV_MODEL_HIGH = 1.1
SOURCE = "transformers#15026 (t5-base on A100: fp32 93.7 -> tf32 210.5 samples/s)"
# The anchor in a few words: where it was measured goes with the figure, on any GPU profile.
ANCHOR_WORDS = f"{END_TO_END_HIGH:.2f}x (t5-base on A100)"

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
# these do (`matmul(`, not the `torch.backends.cuda.matmul` switch).
_MATMUL_BEYOND_HEAD = re.compile(
    r"nn\.(Transformer\w*|MultiheadAttention)\b|from_pretrained|Attention|matmul\(|\bbmm\b|einsum"
)


def matmul_estimate(ctx, switch: Optional[Switch], cudnn_off: bool) -> tuple[SavingsEstimate, bool, str]:
    """(estimate, material, words) of the matmul finding, at `switch` (None: the training loop). A global
    switch on a convolutional or recurrent model costs what its cuDNN layers lose."""
    if switch is not None and switch.scope == BOTH and conv_only_model(ctx):
        return cudnn_tf32_estimate(ctx)
    return tf32_estimate(ctx, cudnn_off=cudnn_off)


def tf32_estimate(ctx, cudnn_off: bool = False) -> tuple[SavingsEstimate, bool, str]:
    """(estimate, material, words for the message) of the float32 matmuls; `cudnn_off`: the module
    also takes cuDNN's layers off TF32 (then they do not "already use TF32")."""
    hardware = ctx.hardware
    conv_only = conv_only_model(ctx)
    assumptions: list[str] = []
    if hardware.is_generic:
        low, high = 1.0, END_TO_END_HIGH
        basis = (
            f"Ampere and newer GPUs run TF32 on tensor cores (A100: 156 vs 19.5 TFLOPS FP32 peak); end to end "
            f"{END_TO_END_HIGH:.2f}x measured on an A100, {SOURCE}; 1x on V100/T4 (no TF32)"
        )
        assumptions.append(hardware.assumption)
        words = f"; up to {ANCHOR_WORDS} on Ampere and newer"
    elif hardware.kind == "gpu" and hardware.tf32 > hardware.fp32 > 0:
        peak = hardware.tf32 / hardware.fp32
        low, high = 1.0, min(END_TO_END_HIGH, peak)
        basis = (
            f"{hardware.label}: TF32 {hardware.tf32:g} vs FP32 {hardware.fp32:g} TFLOPS peak ({peak:.1f}x on the "
            f"matmuls; {hardware.source}); end to end at most {END_TO_END_HIGH:.2f}x as measured on an A100, {SOURCE}"
            + ("" if hardware.label.startswith("NVIDIA A100") else f"; not measured on {hardware.label}")
        )
        if high < END_TO_END_HIGH:
            words = f"; up to {round(high, 2):g}x on {hardware.label} (its TF32:FP32 peak ratio)"
        else:
            words = f"; up to {ANCHOR_WORDS}"
    else:
        low = high = 1.0
        basis = (
            f"{hardware.label} has no TF32 tensor cores faster than its FP32 units: no saving there; {SOURCE} on A100"
        )
        words = f"; no TF32 gain on {hardware.label}, only on Ampere and newer"
    if conv_only and high > 1.0:
        high = min(high, CONV_MODEL_HIGH)
        if cudnn_off:
            assumptions.append(
                "a convolutional or recurrent model: only its few matmuls (the classifier head) gain; the switch "
                "that takes its cuDNN layers off TF32 is reported separately"
            )
            words = "; a convolutional or recurrent model, whose matmuls are few"
        else:
            assumptions.append(
                "a convolutional or recurrent model: cuDNN already runs convolutions and LSTM/GRU cells in TF32 by "
                "default, only the few matmuls (the classifier head) gain"
            )
            words = "; a convolutional or recurrent model, whose cuDNN layers already use TF32"
    high, words = _launch_bound_caps(ctx, high, words, assumptions)
    assumptions.append("the training step is dominated by float32 matmuls (linear, attention, recurrent layers)")
    return _step_factor(hardware, low, high, basis, assumptions, SOURCE_CITED), high > CONV_MODEL_HIGH, words


def cudnn_model(ctx) -> bool:
    """The module builds convolutions or LSTM/GRU/RNN layers: what cuDNN's TF32 switch governs."""
    return bool(_CUDNN_TEXT.search(ctx.text))


def conv_only_model(ctx) -> bool:
    """A convolutional or recurrent model whose only matmuls are a classifier head."""
    return cudnn_model(ctx) and not _MATMUL_BEYOND_HEAD.search(ctx.text)


def cudnn_tf32_estimate(ctx) -> tuple[SavingsEstimate, bool, str]:
    """(estimate, material, words) for a switch that takes cuDNN's convolutions and RNNs off TF32
    (`torch.backends.cudnn.allow_tf32 = False`). No end-to-end measurement of a convolutional model
    is cited: the high end is the GPU's TF32:FP32 peak ratio, an upper bound."""
    hardware = ctx.hardware
    assumptions: list[str] = []
    if not cudnn_model(ctx):
        estimate = SavingsEstimate(
            metric="time_factor",
            low=1.0,
            high=1.0,
            unit="x",
            basis=(
                "the cuDNN switch governs only cuDNN convolutions and LSTM/GRU/RNN layers, and the module builds "
                "none: its matmuls follow torch.backends.cuda.matmul.allow_tf32 instead"
            ),
            hardware=hardware.key,
            assumptions=("the model's layers are built in this module",),
            source=SOURCE_DERIVED,
        )
        return estimate, False, "; the model has no convolutions or RNN layers, so it changes nothing here"
    if hardware.is_generic:
        ratios = [(p.tf32 / p.fp32, p) for p in hardware_table().values() if p.kind == "gpu" and p.tf32 > p.fp32 > 0]
        peak, fastest = max(ratios, key=lambda r: r[0])
        low, high = 1.0, peak
        basis = (
            f"upper bound, the TF32:FP32 peak ratio of the convolutions and RNN matmuls: 1x on GPUs without TF32 "
            f"units (V100, T4) to {peak:g}x ({fastest.label}: TF32 {fastest.tf32:g} vs FP32 {fastest.fp32:g} TFLOPS); "
            "no end-to-end measurement of a convolutional model is cited"
        )
        assumptions.append(hardware.assumption)
        words = f"; up to {peak:g}x on the convolutions of Ampere and newer GPUs (TF32:FP32 peak, an upper bound)"
    elif hardware.kind == "gpu" and hardware.tf32 > hardware.fp32 > 0:
        peak = hardware.tf32 / hardware.fp32
        low, high = 1.0, peak
        basis = (
            f"upper bound: {hardware.label}: TF32 {hardware.tf32:g} vs FP32 {hardware.fp32:g} TFLOPS peak "
            f"({hardware.source}), the most its convolutions and RNN matmuls can gain; no end-to-end measurement "
            "of a convolutional model is cited"
        )
        words = f"; up to {peak:.2g}x on {hardware.label} (TF32:FP32 peak ratio, an upper bound)"
    else:
        low = high = 1.0
        basis = f"{hardware.label} has no TF32 tensor cores faster than its FP32 units: no saving there"
        words = f"; no TF32 gain on {hardware.label}, only on Ampere and newer"
    high, words = _launch_bound_caps(ctx, high, words, assumptions)
    assumptions.append("the training step is dominated by cuDNN convolutions or RNN layers in float32")
    return _step_factor(hardware, low, high, basis, assumptions, SOURCE_DATASHEET), high > CONV_MODEL_HIGH, words


def _step_factor(hardware, low: float, high: float, basis: str, assumptions: list[str], source: str) -> SavingsEstimate:
    """A time factor of the training step, rounded as the messages quote it."""
    return SavingsEstimate(
        metric="time_factor",
        low=round(low, 2),
        high=round(high, 2),
        unit="x",
        basis=basis,
        hardware=hardware.key,
        assumptions=tuple(a for a in assumptions if a),
        source=source,
    )


def _launch_bound_caps(ctx, high: float, words: str, assumptions: list[str]) -> tuple[float, str]:
    """Cap the high end for a tiny model or small batches of a model without attention or recurrent
    layers: the step is bound by kernel launches, not by the tensor cores."""
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
            f"training batches of at most {SMALL_BATCH} (the smallest literal batch_size) for a model without "
            "attention or recurrent layers: the step is bound by kernel launches, not matmul throughput"
        )
        words = f"; batches of {min(batches)} for a model without attention: TF32 gains little"
    return high, words
