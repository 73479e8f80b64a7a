"""GO503: evaluation or inference while autograd records the graph."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import literal_value
from greenops_lint.analysis.candidates import Candidate
from greenops_lint.analysis.efficiency import grad_mode, grad_switch, is_model_callee, uses_torch
from greenops_lint.analysis.loops import FrameNode
from greenops_lint.analysis.names import dotted_name
from greenops_lint.analysis.tree import is_test_file, param_names, walk_expr
from greenops_lint.finding import SavingsEstimate
from greenops_lint.rule import Invalid
from greenops_lint.rules.efficiency._grad_words import FRAMEWORK_NO_GRAD, is_eval_name
from greenops_lint.rules.efficiency._shared import LoopBoundRule, backward_inputs, calls_module_function
from greenops_lint.savings import SOURCE_DERIVED

# ## Estimate: the time factor of the evaluation work (not of training); the main saving is activation memory,
# measured by the probe. The 1.2x upper end is an assumption (autograd bookkeeping): neither the tuning guide
# nor fairchem PR #199 gives a time figure. fairchem PR #199: validation memory in GB without and with no_grad
# (quoted as context, not as the estimate's figure).
TIME_FACTOR_LOW = 1.0
TIME_FACTOR_HIGH = 1.2
FAIRCHEM_GB_RECORDING = (3.4, 8.1)
FAIRCHEM_GB_NO_GRAD = (1.1, 2.3)

_TRAINER_NO_GRAD = frozenset({"evaluate", "prediction_step", "evaluation_loop", "predict"})
# `encoder_class()`, `model_cls()`: instantiating a class held in a variable, not running a model.
_CONSTRUCTOR_NAME = re.compile(r"(^|_)(class|cls|type|factory)$")
# Libraries whose model objects run prediction in inference mode when called (`YOLO(path)(image)`).
_PREDICTOR_WRAPPERS = ("ultralytics.",)
_GRAD_NEEDED = re.compile(
    r"\.backward\(|autograd\.grad\b|requires_grad|enable_grad|\.grad\b|torch\.func\.grad|functorch"
)
_FROZEN = re.compile(r"requires_grad_\(\s*False\s*\)|requires_grad\s*=\s*False")


@dataclass
class _FrameState:
    eval_mode: bool = False
    grad_off: bool = False


class EvalWithoutNoGrad(LoopBoundRule):
    """Runs a model for evaluation or inference while autograd records the graph.

    ## What it does
    Flags a PyTorch model call (`model(x)`, `self.net(x)`, a name bound to a
    model class or `from_pretrained`) in an evaluation or inference context
    (after `model.eval()` in the same function, in a function that every
    caller calls after `model.eval()`, or in a function named like
    `evaluate`, `validate`, `test`, `predict`, `infer`, `sample`, `generate`)
    that repeats (inside a loop, or in such a function called from a loop)
    without `torch.no_grad()`,
    `torch.inference_mode()`, `set_grad_enabled(False)` or a
    `@torch.no_grad()` decorator around it, here or at a call site. The
    author's own switches count: decorators and contexts named like
    `*inference_mode`/`*no_grad` (ultralytics' `@smart_inference_mode()`),
    a decorator of the module that wraps them, and a name bound to them
    (`grad_context = nullcontext if with_grad else torch.no_grad`).

    ## Why is this bad
    `model.eval()` only switches dropout and batch-norm behaviour; it does not
    stop autograd. Every operation still records a graph node and keeps its
    inputs alive for a backward pass that never comes, so evaluation uses
    activation memory like training (fairchem PR #199: memory allocated
    during validation went from 3.4-8.1 GB to 1.1-2.3 GB with `no_grad`) and spends time on
    bookkeeping; smaller batches and OOMs follow.

    Not flagged: Lightning `validation_step`/`test_step`/`predict_step`,
    HF `Trainer.evaluate`/`prediction_step`, a transformers `Pipeline`'s
    `_forward` (run under `inference_context()`), the sampling methods of a
    `GenerationMixin` model (called by `generate()`, decorated
    `@torch.no_grad()`), and what those call (the framework disables
    gradients); ultralytics model objects (`YOLO(path)(image)` predicts in
    inference mode); a network that an inferer's `__call__` receives as an
    argument (MONAI's `inferer(inputs, network)`: its caller sets the grad
    mode, no_grad to evaluate and gradients to train); functions whose
    callers decide (one calls it under no_grad, two calls up; a model's
    `forward` calls it, as for a `predict` head; a caller trains through its
    result: `masks = self._generate_masks(...)` then a loss and
    `.backward()`); MONAI's `eval_mode(net)` context (eval + no_grad);
    `encoder_class()`/`model_cls()` (a class instantiated, not a model
    run); loops that train (`.backward()`, `optimizer.step()`),
    functions that need gradients (saliency maps, adversarial examples:
    `autograd.grad`, `requires_grad`, `.backward()`), modules that freeze
    parameters (`requires_grad_(False)`), explicit `torch.enable_grad()`,
    calls whose result is thrown away (warm-up loops of benchmarks), and test
    files (`test_*.py`).

    ## Fix
    Wrap the loop in `with torch.inference_mode():` (or `torch.no_grad()` if
    its outputs later enter autograd), or decorate the function with
    `@torch.inference_mode()`.

    ## Estimate
    Time factor of the evaluation work (not of training): 1x to 1.2x, an
    assumption (derived) for autograd's bookkeeping: the PyTorch tuning
    guide says no_grad "accelerates execution" without a figure, and
    fairchem PR #199 measured memory, not time. The main saving is
    activation memory (fairchem PR #199, cited above: 3.4-8.1 GB -> 1.1-2.3
    GB during validation), which the probe measures with
    `torch.cuda.max_memory_allocated`.
    """

    code = "GO503"
    name = "eval-without-no-grad"
    estimate_sources = {
        SOURCE_DERIVED: "any hardware: the 1.2x time ceiling is an assumption; the memory figures quoted in its "
        "basis are fairchem PR #199's (validation on a GPU)",
    }
    tokens = ("eval", "test", "valid", "predict", "infer", "sample", "generat")
    INVALID = [
        Invalid(
            """
            import torch
            model.eval()
            preds = []
            for x, _ in test_loader:
                preds.append(model(x).argmax(1))
            """,
            line=5,
            message="model(x) runs the model for evaluation on every iteration of a loop",
        ),
        """
        import torch
        def evaluate(net, loader):
            total = 0
            for x, y in loader:
                total += (net(x).argmax(1) == y).sum()
            return total
        """,
    ]
    VALID = [
        """
        import torch
        model.eval()
        with torch.no_grad():
            for x, _ in test_loader:
                preds.append(model(x).argmax(1))
        """,
        """
        import torch
        @torch.inference_mode()
        def evaluate(net, loader):
            return [net(x) for x, _ in loader]
        """,
        """
        import torch
        import lightning as L
        class Classifier(L.LightningModule):
            def validation_step(self, batch, batch_idx):
                self.model.eval()
                return [self.model(x) for x in batch]
        """,
    ]

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        self.active = uses_torch(ctx) and not is_test_file(ctx.path)
        self.states: list[_FrameState] = [_FrameState()]
        self.site_no_grad: set[int] = set()
        self.site_eval: set[int] = set()  # calls made after model.eval() in the calling function
        self.frozen = bool(_FROZEN.search(ctx.text))
        self._base_text: dict[int, str] = {}
        self._backward_inputs: dict[int, tuple] = {}

    def is_guard(self, node: cst.CSTNode, child: cst.CSTNode, variant: set[str]) -> bool:
        return False  # a guard does not make evaluation need gradients

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.states.append(_FrameState())

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.states.pop()

    def check_call(self, node: cst.Call) -> None:
        if not self.active:
            return
        func = node.func
        state = self.states[-1]
        if isinstance(func, cst.Attribute):
            method = func.attr.value
            if method == "eval" and not node.args:
                state.eval_mode = True
            elif method == "train":
                mode = literal_value(node.args[0].value) if node.args else True
                state.eval_mode = mode is False
        parent = self.ctx.parent()
        if type(parent) is cst.Expr and grad_switch(self.ctx, node, user=False) == "off":
            state.grad_off = True  # torch.set_grad_enabled(False) as a statement
        helper = calls_module_function(func)
        model = (
            type(parent) is not cst.Expr
            and is_model_callee(self.ctx, func)
            and not _CONSTRUCTOR_NAME.search(dotted_name(func) or "")
            and not self._predictor_wrapper(func)
            and not self._inferer_network(func)
        )
        if not (helper or model):
            return
        mode = "off" if (state.grad_off or self.states[0].grad_off) else grad_mode(self.ctx)
        if mode is None and self._framework_no_grad():
            mode = "off"
        if helper:
            if mode == "off":
                self.site_no_grad.add(id(node))
            if state.eval_mode:
                self.site_eval.add(id(node))
        if model:
            # (a result thrown away is a warm-up or benchmark loop, not an evaluation)
            names = [n.name.value for n in self.ctx.stack if type(n) is cst.FunctionDef]
            self.record(node, mode=mode, eval_mode=state.eval_mode, functions=names)

    def _bases(self, cls: cst.ClassDef) -> str:
        text = self._base_text.get(id(cls))
        if text is None:
            text = self._base_text[id(cls)] = " ".join(self.ctx.module.code_for_node(b.value) for b in cls.bases)
        return text

    def _framework_no_grad(self) -> bool:
        """A function around the call is one a framework runs under no_grad:
        Lightning's validation/test/predict steps, HF `Trainer.evaluate`/
        `prediction_step`, a transformers `Pipeline._forward` (under
        `inference_context()`), and the sampling/generation methods of a
        `GenerationMixin` model (called by `generate()`, decorated
        `@torch.no_grad()`)."""
        stack = self.ctx.stack
        for index in range(len(stack) - 2, 1, -1):
            function = stack[index]
            if type(function) is not cst.FunctionDef:
                continue
            name = function.name.value
            if name in FRAMEWORK_NO_GRAD:
                return True
            cls = stack[index - 2]
            if type(cls) is not cst.ClassDef:
                continue
            bases = self._bases(cls)
            if (
                (name in _TRAINER_NO_GRAD and "Trainer" in bases)
                or (name == "_forward" and "Pipeline" in bases)
                or ("GenerationMixin" in bases and is_eval_name(name))
            ):
                return True
        return False

    def _predictor_wrapper(self, func: cst.BaseExpression) -> bool:
        """`self.model = YOLO(path)`: ultralytics' model objects predict in
        inference mode when called."""
        value = self.ctx.value_of(func)
        if not isinstance(value, cst.Call):
            return False
        qualified = self.ctx.call_name(value)
        return qualified is not None and qualified.startswith(_PREDICTOR_WRAPPERS)

    def _inferer_network(self, func: cst.BaseExpression) -> bool:
        """`network(patch)` where `network` is a parameter that the class's
        `__call__` receives (MONAI's inferers: `inferer(inputs, network)`):
        the caller of the inferer sets the grad mode (no_grad to evaluate,
        gradients to train through it)."""
        if type(func) is not cst.Name:
            return False
        function = self.ctx.enclosing_function()
        cls = self.ctx.enclosing_class()
        if function is None or cls is None or func.value not in param_names(function):
            return False
        body = cls.body.body if isinstance(cls.body, cst.IndentedBlock) else ()
        return any(
            type(item) is cst.FunctionDef and item.name.value == "__call__" and func.value in param_names(item)
            for item in body
        )

    def leave_Module(self, node: cst.Module) -> None:
        if not self.candidates or self.frozen:
            return
        reported: set[int] = set()
        for candidate in self.candidates:
            if candidate.extra["mode"] is not None:
                continue
            frame = candidate.frame
            if not (
                candidate.extra["eval_mode"]
                or any(is_eval_name(n) for n in candidate.extra["functions"])
                or self._called_in_eval_mode(frame)
            ):
                continue
            where = self._repeats(candidate)
            if where is None:
                continue
            key = id(candidate.direct[-1].node) if candidate.direct else id(frame)
            if key in reported:
                continue  # one finding per loop (or function)
            reported.add(key)
            self.report(
                candidate.node,
                f"{self.ctx.snippet(candidate.node, 48)} runs the model for evaluation {where} while autograd records "
                "the graph and keeps every activation alive; wrap the loop in torch.inference_mode() (or no_grad()) "
                "or decorate the function with @torch.inference_mode()",
                SavingsEstimate(
                    metric="time_factor",
                    low=TIME_FACTOR_LOW,
                    high=TIME_FACTOR_HIGH,
                    unit="x eval time",
                    basis=f"autograd bookkeeping, assumed to make evaluation up to {TIME_FACTOR_HIGH:g}x slower (the "
                    "PyTorch tuning guide says no_grad accelerates execution, without a figure); the main saving is "
                    "memory: fairchem PR #199 measured validation memory "
                    "{}-{} GB -> {}-{} GB".format(*FAIRCHEM_GB_RECORDING, *FAIRCHEM_GB_NO_GRAD),
                    hardware=self.ctx.hardware.key,
                    source=SOURCE_DERIVED,
                    assumptions=(
                        "the time share is an assumption (small for large kernels); "
                        "the memory saving is measured by the probe",
                    ),
                ),
                statement=candidate.statement,
            )

    def _grad_needed(self, code_node: cst.CSTNode) -> bool:
        return bool(_GRAD_NEEDED.search(self.ctx.module.code_for_node(code_node)))

    def _repeats(self, candidate: Candidate) -> Optional[str]:
        """Where the call repeats, in words; None when it does not (or when
        the code around it needs gradients)."""
        loops = self.ctx.loops
        frame = candidate.frame
        if candidate.direct:
            if any(loop.has_train_step for loop in candidate.direct):
                return None
            outermost = candidate.direct[-1]
            if self._grad_needed(outermost.node):
                return None
            if isinstance(frame, cst.FunctionDef) and self._sites_no_grad(frame):
                return None
            return "on every iteration of a loop"
        if not isinstance(frame, cst.FunctionDef) or self._grad_needed(frame):
            return None
        if self._sites_no_grad(frame):
            return None
        if not is_eval_name(frame.name.value):
            return None
        for site in loops.call_sites.get(frame.name.value, ()):
            if site.frame is frame:
                continue
            for loop in site.loops:
                if loop.has_train_step or loop.is_retry:
                    break
                return f"on every iteration of the loop that calls {frame.name.value}()"
        return None

    def _called_in_eval_mode(self, frame: FrameNode) -> bool:
        """Every caller put the model in eval mode first (`model.eval()` then
        `feats = extract_features(model, loader)`)."""
        if not isinstance(frame, cst.FunctionDef):
            return False
        sites = [site for site in self.ctx.loops.call_sites.get(frame.name.value, ()) if site.frame is not frame]
        return bool(sites) and all(id(site.call) in self.site_eval for site in sites)

    def _sites_no_grad(self, frame: cst.FunctionDef, depth: int = 0) -> bool:
        """The callers decide: some caller already runs this function under
        no_grad (itself, or its own callers, two calls up: `__call__` under
        `@torch.no_grad()` -> `encode_prompt` -> this), calls it from a model's
        `forward` (a prediction head of the forward pass, which trains), or
        trains through its result (`masks = self._generate_masks(...)` then a
        loss on `masks` and `.backward()`)."""
        for site in self.ctx.loops.call_sites.get(frame.name.value, ()):
            if id(site.call) in self.site_no_grad:
                return True
            caller = site.frame
            if type(caller) is not cst.FunctionDef or caller is frame:
                continue
            if caller.name.value == "forward" or self._trains_through(caller, site.call):
                return True
            if depth < 1 and self._sites_no_grad(caller, depth + 1):
                return True
        return False

    def _trains_through(self, caller: cst.FunctionDef, call: cst.Call) -> bool:
        """The result of `call` flows (through assignments) into a backward pass in `caller`."""
        flows = self._backward_inputs.get(id(caller))
        if flows is None:
            flows = self._backward_inputs[id(caller)] = backward_inputs(caller)
        names, assignments = flows
        return any(targets & names and any(node is call for node in walk_expr(value)) for targets, value in assignments)
