"""GO202: `find_unused_parameters=True` makes DDP walk the autograd graph on every step."""

from __future__ import annotations

import re

import libcst as cst

from greenops_lint.analysis.calls import get_arg, literal_value
from greenops_lint.analysis.names import dotted_name
from greenops_lint.analysis.tree import is_test_file
from greenops_lint.finding import SavingsEstimate
from greenops_lint.rule import Invalid, Rule
from greenops_lint.rules.unused._shared import (
    DDP_FLAG_MEASURED_ON,
    DDP_FLAG_TIME_FACTOR,
    DDP_MEASURED_ON,
    DDP_STEP_TIME_FACTOR,
)
from greenops_lint.savings import SOURCE_CPU

# Mixture-of-experts and other routed models leave some parameters without a
# gradient on a step by design: the flag is what they need (info there).
_ROUTING = re.compile(r"\b(?:mixture[_ ]of[_ ]experts|moe\w*|num_experts|experts?|router|top_?k_?gat\w*)\b", re.I)

# The page's `## Estimate`: the flag's own cost, from NO_UNUSED_FACTOR (a large
# model, where one graph traversal a step is lost in the compute) up to the
# measured DDP_FLAG_TIME_FACTOR. DDP_STEP_TIME_FACTOR (an unused layer and the
# flag together) is GO201's claim, quoted for context only.
NO_UNUSED_FACTOR = 1.0


class DdpFindUnusedParameters(Rule):
    """Turns on DDP's search for unused parameters on every step.

    ## What it does
    Flags `find_unused_parameters=True` given as a literal to
    `torch.nn.parallel.DistributedDataParallel` (and any wrapper or config call
    that takes the same keyword, such as accelerate's
    `DistributedDataParallelKwargs` or Lightning's `DDPStrategy`), Lightning's
    `strategy="ddp_find_unused_parameters_true"`, and Hugging Face
    `TrainingArguments(ddp_find_unused_parameters=True)`.

    Not flagged: a value read from configuration
    (`find_unused_parameters=args.find_unused`), a call under an `if` whose
    test is about unused parameters or that has an `else` branch building the
    same wrapper without the flag, and calls that also pass `static_graph=True`
    (the search then runs once, not every step); test files (the API is
    what they test); a value chosen by a conditional expression
    (`DistributedDataParallelKwargs(find_unused_parameters=True) if fusion
    else None`, `{...} if multi_task else {}`: built only under a flag); and
    registry entries that name the setting so that users opt in by name
    (Lightning's `strategy_registry.register("ddp_find_unused_parameters_true",
    cls, find_unused_parameters=True)`: a call whose first argument is a
    string, or a `register*` call).

    Reported at info severity: a trainer class that wraps the model it is
    given (`DistributedDataParallel(self.model, find_unused_parameters=True)`
    in a class, as flair's generic trainer does under `multi_gpu=True`): the
    model is the user's, unknown here, and some models need the flag; the fix
    there is to expose it as an option, off by default. Also at info: a
    module that routes inputs (mixture of experts: `experts`, `router`,
    `num_experts`, `moe_*`, top-k gating), where experts that get no token
    on a step have no gradient and the flag is required.

    ## Why is this bad
    With the flag, DDP walks the autograd graph from the outputs after every
    forward pass to find parameters that will get no gradient, and marks them
    ready; PyTorch warns that this "can adversely affect performance". It also
    changes the gradient-bucket order and reduces the overlap of all-reduce
    with backward. Measured here on two CPU ranks: the flag alone cost
    1.1-1.4x step time on a small MLP; a 64 MiB unused layer with the flag
    cost 2.4x against neither. Usually the flag was added to silence the
    error an unused layer causes (GO201): remove the layer instead.

    ## Fix
    Remove the unused parameters and drop the flag. If some parameters really
    are unused on some steps (multi-task heads, MoE routing) and the set is the
    same every step, use `static_graph=True`; otherwise keep the flag but gate
    it on configuration. Autofix: unsafe (training fails with "Expected to have
    finished reduction" when parameters really are unused).

    ## Estimate
    The flag's own cost, 1x to 1.4x step time: one extra graph traversal
    per step, lost in the compute of a large model, measured at 1.24x
    [1.07, 1.41] on CPU (two gloo ranks, a 512-512-10 MLP, nothing unused;
    the probe measures the same comparison). An unused layer's cost under
    the flag (2.4x with 64 MiB) is GO201's claim, not counted here. The
    source is "measured on CPU": on a GPU profile it is shown as a CPU
    figure and never converted to GPU-hours, since no GPU measurement
    supports it.
    """

    code = "GO202"
    name = "ddp-find-unused-parameters"
    family = "unused"
    estimate_sources = {
        SOURCE_CPU: "2 CPU processes (gloo), the flag on vs off on a small MLP; not a GPU figure, never converted to "
        "GPU-hours",
    }
    tokens = ("find_unused_parameters",)
    INVALID = [
        Invalid(
            """
            from torch.nn.parallel import DistributedDataParallel as DDP
            model = DDP(model, device_ids=[rank], find_unused_parameters=True)
            """,
            line=2,
            message="find_unused_parameters=True makes DDP search the autograd graph",
        ),
        """
        from accelerate import Accelerator, DistributedDataParallelKwargs
        accelerator = Accelerator(kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
        """,
        Invalid(
            """
            import lightning as L
            trainer = L.Trainer(accelerator="gpu", devices=4, strategy="ddp_find_unused_parameters_true")
            """,
            line=2,
            message='strategy="ddp_find_unused_parameters_true" makes DDP search',
        ),
        """
        from transformers import TrainingArguments
        args = TrainingArguments("out", ddp_find_unused_parameters=True)
        """,
    ]
    VALID = [
        """
        import torch
        model = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=args.find_unused)
        """,
        """
        import torch
        model = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=False)
        """,
        """
        import torch
        model = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True, static_graph=True)
        """,
        """
        import lightning as L
        trainer = L.Trainer(strategy="ddp")
        """,
        """
        from accelerate import Accelerator, DistributedDataParallelKwargs

        def build(fusion):
            handlers = [DistributedDataParallelKwargs(find_unused_parameters=True)] if fusion else []
            return Accelerator(kwargs_handlers=handlers)
        """,
        """
        from lightning.fabric.strategies import DDPStrategy

        def register_strategies(strategy_registry):
            strategy_registry.register(
                "ddp_find_unused_parameters_true", DDPStrategy, find_unused_parameters=True, start_method="popen"
            )
        """,
    ]

    _KEYWORDS = ("find_unused_parameters", "ddp_find_unused_parameters")
    _STRATEGIES = ("ddp_find_unused_parameters_true", "ddp_spawn_find_unused_parameters_true")

    def visit_Call(self, node: cst.Call) -> None:
        if self._registry_entry(node):
            return
        for arg in node.args:
            if arg.keyword is None:
                continue
            keyword = arg.keyword.value
            value = literal_value(arg.value)
            if keyword in self._KEYWORDS and value is True:
                static = get_arg(node, "static_graph")
                if static is not None and literal_value(static.value) is True:
                    return
                if not self._conditional(node):
                    self._report(arg, f"{keyword}=True", node)
            elif keyword == "strategy" and value in self._STRATEGIES and not self._conditional(node):
                self._report(arg, f'strategy="{value}"', node)

    def visit_DictElement(self, node: cst.DictElement) -> None:
        key, value = literal_value(node.key), literal_value(node.value)
        if (key in self._KEYWORDS and value is True) or (key == "strategy" and value in self._STRATEGIES):
            if not self._conditional(node):
                self._report(node, f"{key}={node.value.value if hasattr(node.value, 'value') else value}")

    @staticmethod
    def _registry_entry(node: cst.Call) -> bool:
        """`registry.register("ddp_find_unused_parameters_true", cls, find_unused_parameters=True)`."""
        if isinstance(node.func, cst.Attribute) and node.func.attr.value.startswith("register"):
            return True
        first = node.args[0] if node.args else None
        return (
            first is not None
            and first.keyword is None
            and isinstance(literal_value(first.value), str)
            and ("unused" in literal_value(first.value))
        )

    def _conditional(self, node: cst.CSTNode) -> bool:
        """Under an `if` about unused parameters, or an if/else choosing between
        wrappers, or in a conditional expression; and anywhere in a test file."""
        if is_test_file(self.ctx.path):
            return True
        call_text = None
        if isinstance(node, cst.Call):
            call_text = dotted_name(node.func)
        for ancestor in reversed(self.ctx.stack[:-1]):
            if isinstance(ancestor, cst.IfExp):
                return True
            if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef)):
                return False
            if isinstance(ancestor, cst.If):
                if "unused" in self.ctx.module.code_for_node(ancestor.test).lower():
                    return True
                if call_text and ancestor.orelse is not None:
                    code = self.ctx.module.code_for_node
                    branches = code(ancestor.body) + code(ancestor.orelse)
                    if branches.count(call_text + "(") >= 2:
                        return True
        return False

    def _report(self, node: cst.CSTNode, what: str, call: cst.Call = None) -> None:
        estimate = SavingsEstimate(
            metric="time_factor",
            low=NO_UNUSED_FACTOR,
            high=DDP_FLAG_TIME_FACTOR,
            unit="x",
            basis=(
                f"measured on CPU: up to {DDP_FLAG_TIME_FACTOR:g}x step time with find_unused_parameters=True "
                f"against without, on {DDP_FLAG_MEASURED_ON}: one extra autograd-graph traversal per step, which "
                "PyTorch's reducer warns 'can adversely affect performance'; an unused layer under the flag costs "
                f"more ({DDP_STEP_TIME_FACTOR:g}x on {DDP_MEASURED_ON}), counted by GO201"
            ),
            hardware=self.ctx.hardware.key,
            assumptions=("the model has no parameters that are really unused in some steps",),
            source=SOURCE_CPU,
        )
        generic = self._wraps_given_model(call)
        routed = _ROUTING.search(self.ctx.text)
        if routed and not generic:
            advice = (
                f"this module routes inputs ({routed.group(0)}): experts or branches that get no input on a step "
                "need the flag; keep it where routing is on and drop it elsewhere"
            )
        elif generic:
            advice = (
                f"this trainer wraps whatever model it is given ({generic}): expose the flag as an option, off by "
                "default, so that models without unused parameters do not pay for the search"
            )
        else:
            advice = (
                "remove the unused parameters (GO201) and drop the flag, or use static_graph=True if the unused set "
                "never changes"
            )
        self.report(
            node,
            f"{what} makes DDP search the autograd graph for unused parameters on every step "
            f"(up to {DDP_FLAG_TIME_FACTOR:g}x step time, measured on CPU); {advice}",
            estimate,
            severity="info" if generic or routed else self.severity,
        )

    def _wraps_given_model(self, call) -> str:
        """`DistributedDataParallel(self.model, ...)` inside a class: the text of
        the wrapped model, or ''."""
        if not isinstance(call, cst.Call) or not call.args or self.ctx.enclosing_class() is None:
            return ""
        first = call.args[0]
        if first.keyword is not None or not isinstance(first.value, cst.Attribute):
            return ""
        value = first.value
        if isinstance(value.value, cst.Name) and value.value.value == "self" and "model" in value.attr.value.lower():
            return f"self.{value.attr.value}"
        return ""
