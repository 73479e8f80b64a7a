"""What only the GO2xx rules share: the measured cost of DDP's unused-parameter search.

GO201 (an unused layer forces the flag) and GO202 (the flag itself) quote the
same measurement, so it is written once, here.
"""

from __future__ import annotations

import re

import libcst as cst

from greenops_lint.analysis.names import dotted_name

# Measured on CPU: a model with a 64 MiB unused layer and the flag it forces, over
# the same model with both removed (GO201's claim: the layer and the flag together).
DDP_STEP_TIME_FACTOR = 2.4
DDP_MEASURED_ON = "2 CPU (gloo) ranks with a 64 MiB unused layer"
# Measured on CPU: the flag alone, on vs off, nothing unused (GO202's claim):
# `greenops-lint probe fixtures/probe/GO201_GO202_ddp_aux_head.py --rule GO202 --repeats 10`
# gave 1.24x [1.07, 1.41]; earlier runs 1.13x and 1.36x [1.17, 1.56].
DDP_FLAG_TIME_FACTOR = 1.4
DDP_FLAG_MEASURED_ON = "2 CPU (gloo) ranks training a 512-512-10 MLP with no unused parameter"
# Bytes a float32 parameter takes, in memory and in a checkpoint.
FLOAT32_BYTES = 4
# Measured on CPU: the same unused 64 MiB layer in one process, no DDP (probe-research.md 3.d):
# 1.016x [0.98, 1.05] step time, no measurable cost: nothing runs it and nothing gives it gradients.
SINGLE_PROCESS_TIME_FACTOR = 1.016
SINGLE_PROCESS_CI = (0.98, 1.05)
# A module that trains under DDP: the wrapper, a Lightning/accelerate DDP strategy, or the flag itself.
_DDP_TEXT = re.compile(r"DistributedDataParallel|\bDDPStrategy\b|\bstrategy\s*=\s*[\"']ddp|find_unused_parameters")


def uses_ddp(ctx) -> bool:
    """The module trains under DistributedDataParallel (directly or through a DDP strategy)."""
    return bool(_DDP_TEXT.search(ctx.text))


# What says "this module ports a released, pretrained model": its layers are laid
# out to match checkpoints that already exist, so deleting an unused layer or a
# conv bias changes the state-dict keys those checkpoints carry.
_PORT_BASE_SUFFIXES = ("PreTrainedModel", "PretrainedModel", "ModelMixin")
_PORT_MARKERS = (
    "_keys_to_ignore_on_load",
    "_tied_weights_keys",
    "base_model_prefix",
    "load_state_dict_from_url",
    "model_urls",
    "pretrained_cfg",
    "default_cfg",
    "build_model_with_cfg",
    "load_pretrained",
    "def from_pretrained",
)
# Code adapted from a published model's repository keeps its layer names so that
# the published weights load: "Adapted from `https://github.com/facebookresearch/...`",
# or the copyright line of the lab that released the model.
_PORT_PROVENANCE = re.compile(
    r"\b(?:adapted|ported|copied|borrowed|modified) from\b[^\n]{0,80}(?:https?://|github|official)"
    r"|copyright[^\n]{0,20}\b(?:meta platforms|facebook|deepmind|openai)\b",
    re.IGNORECASE,
)


def pretrained_port_signal(ctx) -> str:
    """Why the module looks like a port of a pretrained model ('' if it does not):
    a class deriving from a `*PreTrainedModel` / `ModelMixin` base, or one of
    the checkpoint-loading markers of transformers, diffusers, timm and torchvision."""
    cached = getattr(ctx, "_go2_port_signal", None)
    if cached is not None:
        return cached
    signal = ""
    for stmt in ctx.module.body:
        if isinstance(stmt, cst.ClassDef):
            for base in stmt.bases:
                name = dotted_name(base.value) or ""
                if name.rsplit(".", 1)[-1].endswith(_PORT_BASE_SUFFIXES):
                    signal = f"{stmt.name.value} derives from {name}"
                    break
        if signal:
            break
    if not signal:
        marker = next((m for m in _PORT_MARKERS if m in ctx.text), None)
        if marker:
            signal = f"the module uses {marker.removeprefix('def ')}"
    if not signal:
        provenance = _PORT_PROVENANCE.search(ctx.text)
        if provenance:
            signal = f'it says "{" ".join(provenance.group(0).split())[:60]}"'

    try:
        ctx._go2_port_signal = signal
    except AttributeError:  # pragma: no cover - a context with __slots__
        pass
    return signal
