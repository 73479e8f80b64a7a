"""GO205: a debugging switch that slows every step is left on unconditionally."""

from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import TRUTHY_LITERALS, environ_assignment, get_arg, literal_value
from greenops_lint.analysis.tree import display_name, is_test_file
from greenops_lint.finding import SavingsEstimate
from greenops_lint.rule import Invalid, Rule
from greenops_lint.savings import SOURCE_CPU, SOURCE_DERIVED

# The page's `## Estimate`: time factors of the training step, measured here on CPU
# (1 thread, process time, 15 interleaved repetitions; medians) with a CNN (2 conv +
# BN, batch 16 of 32x32) and an MLP (8 x 256 linear, batch 64); CUDA_LAUNCH_BLOCKING's
# is derived.
ANOMALY_CNN, ANOMALY_MLP = 1.25, 2.3
PROFILER_CNN, PROFILER_MLP = 1.2, 1.5
LAUNCH_BLOCKING_MAX = 2.0
TF_EAGER_MAX = 6.8
JAX_NO_JIT_MAX = 18.0
_LAUNCH_BLOCKING = "CUDA_LAUNCH_BLOCKING=1 makes every CUDA kernel launch synchronous (no CPU/GPU overlap)"
_LOSE_LESS = "large kernel-bound models lose less"

# (low, high, basis) by a word of the finding's message, first match wins.
_DEBUG_COSTS = {
    "anomaly": (
        ANOMALY_CNN,
        ANOMALY_MLP,
        f"measured: anomaly mode cost {ANOMALY_CNN:g}x CPU time per training step for a small CNN and "
        f"{ANOMALY_MLP:g}x for an 8-layer MLP (torch 2.5, CPU, 15 interleaved runs); on GPUs its NaN checks "
        "also synchronise with the host",
    ),
    "profiler": (
        PROFILER_CNN,
        PROFILER_MLP,
        f"measured: torch.autograd.profiler.profile() around training steps cost {PROFILER_CNN:g}x (CNN) to "
        f"{PROFILER_MLP:g}x (MLP) CPU time per step (torch 2.5, CPU, 15 interleaved runs)",
    ),
    "CUDA_LAUNCH_BLOCKING": (
        1.0,
        LAUNCH_BLOCKING_MAX,
        "derived: without launch/compute overlap a step takes CPU launch time + GPU time instead of the larger "
        f"of the two, up to {LAUNCH_BLOCKING_MAX:g}x when they are equal, plus a host synchronisation per kernel",
    ),
    "tf.function": (
        1.0,
        TF_EAGER_MAX,
        f"measured: a Keras MLP training step ran {TF_EAGER_MAX:g}x slower (CPU time) with "
        f"run_functions_eagerly(True) than as a tf.function (TF 2.18, CPU, 1 thread); {_LOSE_LESS}",
    ),
    "Keras": (
        1.0,
        TF_EAGER_MAX,
        f"measured: a Keras MLP training step ran {TF_EAGER_MAX:g}x slower (CPU time) eagerly than as a "
        f"tf.function (TF 2.18, CPU, 1 thread); {_LOSE_LESS}",
    ),
    "jitted": (
        1.0,
        JAX_NO_JIT_MAX,
        f"measured: an MLP training step ran {JAX_NO_JIT_MAX:g}x slower (CPU time) under jax.disable_jit() "
        f"than jitted (JAX 0.4.35, CPU); {_LOSE_LESS}",
    ),
}
_GUARD = re.compile(r"debug|anomal|profil|nvtx|trace|verbose|eager|sanity|detect", re.IGNORECASE)
# Functions that are themselves the opt-in: `enable_full_determinism()`,
# `debug_step()`, `profile_epoch()`; calling one is the user's choice.
_GUARD_FUNCTION = re.compile(r"debug|profil|^test|bench|trace|^_?enable_|determinis|reproducib", re.IGNORECASE)


class DebugModeLeftOn(Rule):
    """A debugging switch that slows every step is left on unconditionally.

    ## What it does
    Flags, outside tests and outside an `if` that tests a debug-style flag
    (`if args.debug:`, `if cfg.detect_anomaly:`, `if os.getenv("DEBUG")`):
    `torch.autograd.set_detect_anomaly(True)`, `with torch.autograd.detect_anomaly():`,
    `torch.autograd.profiler.profile()` / `emit_nvtx()` and
    `torch.profiler.profile()` without a `schedule=` wrapping a training loop,
    `CUDA_LAUNCH_BLOCKING=1` set in code (`os.environ[...] = "1"`,
    `os.environ.setdefault`, `os.putenv`), `tf.config.run_functions_eagerly(True)`,
    Keras `compile(..., run_eagerly=True)`, and
    `jax.config.update("jax_disable_jit", True)`.

    Not flagged: a value from configuration (`set_detect_anomaly(args.debug)`),
    `enabled=False`, a conditional expression, calls inside functions that
    are themselves the opt-in (named like `debug_*`, `profile_*`,
    `benchmark_*`, `enable_*`, `*determinism*`: transformers' and diffusers'
    `enable_full_determinism()` sets `CUDA_LAUNCH_BLOCKING` only when the
    user asks for full determinism), and test files.

    ## Why is this bad
    Anomaly detection records a stack trace for every autograd node in forward
    and checks every backward output for NaN, which PyTorch documents as
    "should be enabled only for debugging as the different tests will slow
    down your program execution". The autograd profiler times every operator.
    `CUDA_LAUNCH_BLOCKING=1` makes every kernel launch synchronous, removing all
    CPU/GPU overlap. Eager mode in TensorFlow/Keras and `jax_disable_jit` run
    op by op in Python instead of a compiled graph.

    ## Fix
    Remove the call, or put it under a debug flag that is off by default.
    Autofix: unsafe (error behaviour changes).

    ## Estimate
    Time factor of the training step, measured here on CPU with small models
    (so an upper range for large, kernel-bound models): anomaly detection
    1.25x (CNN) to 2.3x (MLP); the autograd profiler 1.2x to 1.5x; TF eager
    execution up to 6.8x; `jax.disable_jit()` up to 18x. `CUDA_LAUNCH_BLOCKING=1`:
    up to 2x, derived from losing the overlap of kernel launches with GPU work.
    The measured figures carry the source "measured on CPU": on a GPU profile
    they are shown as CPU figures and never converted to GPU-hours.
    """

    code = "GO205"
    name = "debug-mode-left-on"
    family = "unused"
    estimate_sources = {
        SOURCE_CPU: "small models on a 2-vCPU CPU (anomaly mode, profiler, eager TF, `disable_jit`); not a GPU figure, never converted to GPU-hours",
        SOURCE_DERIVED: "any GPU: `CUDA_LAUNCH_BLOCKING=1` loses launch/compute overlap, at most 2x",
    }
    tokens = ("anomaly", "profiler", "emit_nvtx", "CUDA_LAUNCH_BLOCKING", "eagerly", "jax_disable_jit", "disable_jit")
    INVALID = [
        Invalid(
            """
            import torch
            torch.autograd.set_detect_anomaly(True)
            """,
            line=2,
            message=f"records forward stack traces (up to {ANOMALY_MLP:g}x step time)",
        ),
        Invalid(
            """
            import os
            os.environ["CUDA_LAUNCH_BLOCKING"] = "1"
            """,
            line=2,
            message="CUDA_LAUNCH_BLOCKING=1 makes every CUDA kernel launch synchronous",
        ),
        """
        import tensorflow as tf
        tf.config.run_functions_eagerly(True)
        """,
        Invalid(
            """
            import torch

            def train(model, loader, opt):
                with torch.autograd.detect_anomaly():
                    for x, y in loader:
                        model(x, y).backward()
                        opt.step()
            """,
            line=4,
            message="torch.autograd.detect_anomaly() checks every autograd node",
        ),
    ]
    VALID = [
        """
        import torch
        if args.debug:
            torch.autograd.set_detect_anomaly(True)
        """,
        """
        import torch
        torch.autograd.set_detect_anomaly(args.detect_anomaly)
        """,
        """
        import torch
        torch.autograd.set_detect_anomaly(False)
        """,
        """
        import os
        os.environ["CUDA_LAUNCH_BLOCKING"] = "0"
        """,
        """
        import os
        import torch

        def enable_full_determinism(seed: int):
            os.environ["CUDA_LAUNCH_BLOCKING"] = "1"
            torch.use_deterministic_algorithms(True)
        """,
    ]

    _ANOMALY_SET = frozenset({"torch.autograd.set_detect_anomaly", "torch.autograd.anomaly_mode.set_detect_anomaly"})
    _ANOMALY_WITH = frozenset({"torch.autograd.detect_anomaly", "torch.autograd.anomaly_mode.detect_anomaly"})
    _PROFILERS = frozenset(
        {
            "torch.autograd.profiler.profile",
            "torch.autograd.profiler.emit_nvtx",
            "torch.autograd.profile",
            "torch.autograd.emit_nvtx",
            "torch.profiler.profile",
            "torch.autograd.profiler_legacy.profile",
        }
    )
    _EAGER = frozenset(
        {"tensorflow.config.run_functions_eagerly", "tensorflow.config.experimental_run_functions_eagerly"}
    )
    _JAX_UPDATE = frozenset({"jax.config.update", "jax.config.config.update"})

    def visit_Call(self, node: cst.Call) -> None:
        name = self.ctx.call_name(node)
        first = get_arg(node, None, 0)
        what = None
        if name in self._ANOMALY_SET:
            arg = get_arg(node, "mode", 0)
            if arg is not None and literal_value(arg.value) is True:
                what = "torch.autograd.set_detect_anomaly(True) checks every autograd node and records forward stack traces"
        elif name in self._ANOMALY_WITH:
            what = "torch.autograd.detect_anomaly() checks every autograd node and records forward stack traces"
        elif name in self._PROFILERS:
            what = self._profiler(node, name)
        elif name in self._EAGER:
            if first is not None and literal_value(first.value) is True:
                what = f"{display_name(name)}(True) runs every tf.function op by op in Python"
        elif name in self._JAX_UPDATE:
            value = get_arg(node, None, 1)
            if (
                first is not None
                and literal_value(first.value) == "jax_disable_jit"
                and value is not None
                and literal_value(value.value) in TRUTHY_LITERALS
            ):
                what = 'jax.config.update("jax_disable_jit", True) runs every jitted function op by op'
        elif name == "jax.disable_jit":
            what = "jax.disable_jit() runs every jitted function op by op"
        elif name in ("os.environ.setdefault", "os.putenv"):
            value = get_arg(node, None, 1)
            if (
                first is not None
                and literal_value(first.value) == "CUDA_LAUNCH_BLOCKING"
                and value is not None
                and literal_value(value.value) in TRUTHY_LITERALS
            ):
                what = _LAUNCH_BLOCKING
        elif isinstance(node.func, cst.Attribute) and node.func.attr.value == "compile":
            eager = get_arg(node, "run_eagerly")
            if eager is not None and literal_value(eager.value) is True and "keras" in self.ctx.text:
                what = "compile(run_eagerly=True) runs every Keras training step op by op in Python"
        if what is not None and not self._guarded():
            self._report(node, what)

    def visit_Assign(self, node: cst.Assign) -> None:
        assignment = environ_assignment(self.ctx, node)
        if (
            assignment is not None
            and assignment[0] == "CUDA_LAUNCH_BLOCKING"
            and literal_value(assignment[1]) in TRUTHY_LITERALS
        ):
            if not self._guarded():
                self._report(node, _LAUNCH_BLOCKING)

    def _profiler(self, node: cst.Call, name: str) -> Optional[str]:
        enabled = get_arg(node, "enabled", 0 if "emit_nvtx" in name else None)
        if enabled is not None and literal_value(enabled.value) is not True:
            return None
        if name == "torch.profiler.profile" and get_arg(node, "schedule") is not None:
            return None
        # Only a profiler wrapped around training: a `with` whose body loops and calls backward.
        item, with_node = self.ctx.parent(1), self.ctx.parent(2)
        if not (isinstance(item, cst.WithItem) and isinstance(with_node, cst.With)):
            return None
        body = self.ctx.module.code_for_node(with_node.body)
        if ".backward(" not in body or not any(f"{k} " in body for k in ("for", "while")):
            return None
        return f"{display_name(name)}() around the training loop times every operator of every step"

    def _guarded(self) -> bool:
        if is_test_file(self.ctx.path):
            return True
        for ancestor in reversed(self.ctx.stack[:-1]):
            if isinstance(ancestor, cst.If) and _GUARD.search(self.ctx.module.code_for_node(ancestor.test)):
                return True
            if isinstance(ancestor, cst.IfExp):
                return True
            if isinstance(ancestor, cst.FunctionDef) and _GUARD_FUNCTION.search(ancestor.name.value):
                return True
        return False

    def _report(self, node: cst.CSTNode, what: str) -> None:
        key = next((k for k in _DEBUG_COSTS if k in what), "profiler")
        low, high, basis = _DEBUG_COSTS[key]
        estimate = SavingsEstimate(
            metric="time_factor",
            low=low,
            high=high,
            unit="x",
            basis=basis,
            hardware=self.ctx.hardware.key,
            assumptions=("the switch is on for the whole training run",),
            source=SOURCE_DERIVED if key == "CUDA_LAUNCH_BLOCKING" else SOURCE_CPU,
        )
        self.report(
            node,
            f"{what} (up to {high:g}x step time); it is a debugging aid: remove it or put it under a debug flag",
            estimate,
        )
