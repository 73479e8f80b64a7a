"""GO501: a GPU->CPU synchronisation on every training step."""

from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from greenops_lint.analysis.efficiency import (
    TrainingLoops,
    already_on_host,
    grad_mode,
    is_host_root,
    is_model_callee,
    tensor_evidence,
    uses_cuda,
    uses_torch,
)
from greenops_lint.analysis.loops import Repetition
from greenops_lint.analysis.tree import last_word, walk_expr
from greenops_lint.finding import SavingsEstimate
from greenops_lint.rule import Invalid
from greenops_lint.rules.efficiency._shared import OPTIMIZER_RECEIVER, RL_IMPORT, LoopBoundRule
from greenops_lint.savings import SOURCE_DERIVED

# ## Estimate: the time factor of the training step. One sync per step stops host/device overlap: near 1x when
# GPU kernels dominate the step, up to 2x when host and device times are equal (launch-bound steps).
TIME_FACTOR_LOW = 1.0
TIME_FACTOR_HIGH = 2.0

# Calls that read a tensor's value on the host (and, for the chain check, `.numpy()` after one of them).
_SYNC_METHODS = ("item", "cpu", "tolist")
_DEEPSPEED = re.compile(r"deepspeed", re.IGNORECASE)
# A user option: `if self.args.include_num_input_tokens_seen == "no": return` at the top of a helper.
_OPTION = re.compile(r"\b(args|config|cfg|options|opts|hparams|settings)\.")
# Functions that evaluate: called from a training loop, they run per evaluation, not per step.
_EVALUATION_FRAME = re.compile(r"^_?(eval|evaluate|evaluation|validate|validation|test|predict|inference)(_\w*)?$")
# Tensor tests that read a value on the host: `if not torch.isfinite(loss):`.
_TENSOR_TESTS = ("isfinite", "isnan", "isinf", "any", "all", "equal", "allclose", "is_nonzero")


class HostSyncInStepLoop(LoopBoundRule):
    """Forces a GPU->CPU synchronisation on every training step.

    ## What it does
    Flags `.item()`, `.cpu()` and `.tolist()` on a tensor, and `print(t)`,
    `float(t)`, `int(t)` of a tensor produced on the device (a model or loss
    output, a `torch.*` result, a `.to(device)` copy), when they run on every
    iteration of a training step loop: a loop that runs `.backward()` or
    `optimizer.step()` (directly or through a function of the module it
    calls), Lightning's `training_step` and Keras-style `train_step`, and
    functions of the module called from such a loop (two calls deep). Only
    PyTorch modules that use CUDA are checked.

    ## Why is this bad
    CUDA kernels run asynchronously: the CPU queues the next operations while
    the GPU works. Reading a value on the host (`loss.item()`,
    `print(loss)`, `.cpu()`) makes the CPU wait until every queued kernel has
    finished, then copy the value; the GPU then idles while the CPU prepares
    and launches the next step. The PyTorch performance tuning guide lists
    exactly these calls under "avoid unnecessary CPU-GPU synchronization".

    Not flagged: syncs under a periodic guard (`if step % log_every == 0:`),
    a one-off test (`if i == len(loader) - 1:`) or an early-exit branch, in an
    exception handler, once per epoch (after the step loop), in evaluation
    loops (they do not train), on NumPy/Python values or on a raw batch from
    the DataLoader (host tensors), values the host needs to act
    (`env.step(action.item())` in reinforcement learning), and bare `.numpy()`
    (it only works on host tensors, so the sync was the `.cpu()` before it),
    a value the host needs to decide (`kl = loss.item()` tested by the
    `if` or `while` right after it: early stopping, a NaN check), and syncs
    in a DeepSpeed-only branch (`if ... DEEPSPEED:`: DeepSpeed's step
    already syncs for its overflow check and gradient norm), and
    evaluation helpers that a training loop calls (a function under
    `no_grad`/`inference_mode`, or named `evaluate()`/`validate()`: they
    run once per evaluation), and helpers that return early unless a user
    option is on (`if self.args.track_tokens == "no": return`: the cost
    of an opt-in feature). Several reads
    in one statement (`print(a.item(), b.item())`) are one finding.

    ## Fix
    Keep running values on the device (`running_loss += loss.detach()`) and
    read them every N steps or once per epoch; log tensors to a logger that
    syncs lazily (Lightning's `self.log(..., loss)`); move host copies out of
    the step loop.

    ## Estimate
    Time factor of the training step: 1x to 2x. With one synchronisation per
    step the host and device work of a step can no longer overlap, so a step
    takes at most host time + device time instead of at least the larger of
    the two: near 1x when GPU kernels dominate (large models), up to 2x when
    host and device times are equal (small, launch-bound models). The probe
    measures the real ratio.

    ## When it is material
    A sync costs the overlap of host and device work, so it is material
    where the step does not already wait for the device. A finding is
    reported at severity info (hidden unless `--show-info`) when the same
    step already syncs for a decision the host must take (a NaN check
    `if not torch.isfinite(loss):`, an early stop on `approx_kl`: a second
    read adds little), and in reinforcement learning modules (importing
    `gym`, `gymnasium`, `stable_baselines3` and the like), where stepping
    the environment already syncs on every env step and the policies are
    small MLPs.

    The rule is info as a whole: on the 28-wheel triage corpus the per-step
    syncs left after these exclusions were true in 2 of 4 cases; the others
    feed a host decision in another function (a learning-rate finder's
    divergence stop, a NaN check in a helper) that the rule does not follow.
    """

    code = "GO501"
    name = "host-sync-in-step-loop"
    estimate_sources = {
        SOURCE_DERIVED: "any GPU: a step takes host + device time instead of the larger of the two, at most 2x",
    }
    severity = "info"
    tokens = (".item()", ".cpu()", ".tolist()", "print(", "float(", "int(")
    INVALID = [
        Invalid(
            """
            import torch
            device = torch.device("cuda")
            for x, y in train_loader:
                loss = criterion(model(x.to(device)), y.to(device))
                loss.backward()
                optimizer.step()
                running_loss += loss.item()
            """,
            line=7,
            message="loss.item() makes the CPU wait for every queued GPU kernel",
        ),
        """
        import torch
        model = model.cuda()
        for step, batch in enumerate(loader):
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            print(f"step {step}: {loss}")
        """,
    ]
    VALID = [
        """
        import torch
        device = torch.device("cuda")
        for step, (x, y) in enumerate(train_loader):
            loss = criterion(model(x.to(device)), y.to(device))
            loss.backward()
            optimizer.step()
            if step % 100 == 0:
                print(loss.item())
        """,
        """
        import torch
        device = torch.device("cuda")
        for epoch in range(10):
            for x, y in train_loader:
                loss = criterion(model(x.to(device)), y.to(device))
                loss.backward()
                optimizer.step()
            correct = 0
            for x, y in val_loader:
                correct += (model(x.to(device)).argmax(1) == y.to(device)).sum().item()
        """,
    ]

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        self.active = uses_torch(ctx) and uses_cuda(ctx)
        self.reinforcement = bool(RL_IMPORT.search(ctx.text))
        # id() of the loops (or frames, outside loops) whose iteration already
        # syncs for a host decision
        self.deciding: set[int] = set()

    def guard_test(self, test: cst.BaseExpression, variant: set[str]) -> bool:
        """Also a DeepSpeed-only branch: DeepSpeed's step already syncs."""
        return super().guard_test(test, variant) or bool(_DEEPSPEED.search(self.ctx.module.code_for_node(test)))

    # -- syncs the host needs to decide ------------------------------------------------
    def _step_key(self) -> int:
        direct = self.ctx.loops.loops_at()
        return id(direct[0]) if direct else id(self.ctx.loops.current_frame)

    def _tensor_test(self, test: cst.BaseExpression) -> bool:
        """`if not torch.isfinite(loss):`, `if (x > 0).any():`: the test reads a tensor."""
        if not self.active:
            return False
        for node in walk_expr(test):
            if isinstance(node, cst.Call):
                qualified = self.ctx.call_name(node) or ""
                if qualified.startswith("torch.") and qualified.rsplit(".", 1)[-1] in _TENSOR_TESTS:
                    return True
                if isinstance(node.func, cst.Attribute) and node.func.attr.value in _SYNC_METHODS:
                    return True
        return False

    def _visit_test(self, node) -> None:
        if self._tensor_test(node.test):
            self.deciding.add(self._step_key())

    visit_If = visit_While = _visit_test

    def _behind_option(self) -> bool:
        """The function returns early unless a user option is on: the sync is
        the cost of an opt-in feature (`if self.args.track_tokens == "no": return`)."""
        frame = self.ctx.loops.current_frame
        if not isinstance(frame, cst.FunctionDef) or not isinstance(frame.body, cst.IndentedBlock):
            return False
        for statement in frame.body.body:
            if any(statement is node for node in self.ctx.stack):
                return False
            if (
                isinstance(statement, cst.If)
                and isinstance(statement.body, cst.IndentedBlock)
                and len(statement.body.body) == 1
                and isinstance(statement.body.body[0], cst.SimpleStatementLine)
                and isinstance(statement.body.body[0].body[0], cst.Return)
                and _OPTION.search(self.ctx.module.code_for_node(statement.test))
            ):
                return True
        return False

    def _in_evaluation(self) -> bool:
        frame = self.ctx.loops.current_frame
        return isinstance(frame, cst.FunctionDef) and bool(_EVALUATION_FRAME.match(frame.name.value))

    def _decides(self) -> bool:
        """The value read is tested right away: in an `if`/`while` test, or
        assigned to a name that an `if`/`while` test below reads."""
        stack = self.ctx.stack
        for index in range(len(stack) - 2, -1, -1):
            node, child = stack[index], stack[index + 1]
            if isinstance(node, (cst.If, cst.While, cst.IfExp)) and child is node.test:
                return True
            if isinstance(node, (cst.BaseSmallStatement, cst.BaseCompoundStatement, cst.FunctionDef)):
                break
        statement = self.ctx.enclosing_statement()
        if not isinstance(statement, cst.SimpleStatementLine):
            return False
        names: set[str] = set()
        for small in statement.body:
            if isinstance(small, cst.Assign):
                for target in small.targets:
                    if isinstance(target.target, cst.Name):
                        names.add(target.target.value)
        if not names:
            return False
        # The statements after it, in its block and in the blocks around it up to the loop or function.
        stack = self.ctx.stack
        child: cst.CSTNode = statement
        top = next((i for i in range(len(stack) - 1, -1, -1) if stack[i] is statement), 0)
        for index in range(top - 1, -1, -1):
            node = stack[index]
            if isinstance(node, (cst.FunctionDef, cst.Lambda, cst.For, cst.While)):
                break
            body = node.body if isinstance(node, cst.IndentedBlock) else None
            if body is not None and child in body:
                for sibling in body[body.index(child) + 1 :]:
                    if isinstance(sibling, (cst.If, cst.While)) and any(
                        isinstance(n, cst.Name) and n.value in names for n in walk_expr(sibling.test)
                    ):
                        return True
            child = node
        return False

    def check_call(self, node: cst.Call) -> None:
        if not self.active:
            return
        if self._is_sync(node):
            if self._decides():
                self.deciding.add(self._step_key())
                return
            if self._behind_option():
                return
            self.record(node, step=self._step_key(), evaluation=grad_mode(self.ctx) == "off" or self._in_evaluation())

    def _is_sync(self, node: cst.Call) -> bool:
        func = node.func
        if isinstance(func, cst.Attribute) and not node.args:
            method = func.attr.value
            if method not in _SYNC_METHODS:
                return False
            receiver = func.value
            if already_on_host(receiver) or is_host_root(self.ctx, receiver):
                return False
            if method == "cpu" and is_model_callee(self.ctx, receiver):
                return False  # moving a model, not reading a value
            if method == "tolist" and not tensor_evidence(self.ctx, receiver):
                return False
            return not self._feeds_environment()
        qualified = self.ctx.call_name(node)
        if qualified == "builtins.print":
            return any(self._device_value_in(arg.value) for arg in node.args)
        if qualified in ("builtins.float", "builtins.int") and len(node.args) == 1:
            return bool(tensor_evidence(self.ctx, node.args[0].value)) and not already_on_host(node.args[0].value)
        return False

    def _feeds_environment(self) -> bool:
        """`env.step(action.item())`: the host needs the value to act (RL), the
        sync cannot be avoided."""
        stack = self.ctx.stack
        for index in range(len(stack) - 2, max(len(stack) - 6, 0), -1):
            node = stack[index]
            if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "step":
                return not OPTIMIZER_RECEIVER.search(last_word(node.func.value))
            if isinstance(node, (cst.BaseSmallStatement, cst.BaseCompoundStatement)):
                break
        return False

    def _device_value_in(self, value: cst.BaseExpression) -> bool:
        if isinstance(value, cst.FormattedString):
            return any(
                isinstance(part, cst.FormattedStringExpression) and self._device_value_in(part.expression)
                for part in value.parts
            )
        if isinstance(value, (cst.Name, cst.Attribute, cst.Subscript)):
            return bool(tensor_evidence(self.ctx, value)) and not already_on_host(value)
        return False

    def where(self, repetition: Repetition) -> str:
        if repetition.loop.kind == "epoch" and not repetition.loop.framework:
            count = f" ({repetition.loop.count} steps)" if repetition.loop.count else ""
            return f"on every step of the full-batch training loop{count}"
        return super().where(repetition)

    def leave_Module(self, node: cst.Module) -> None:
        if not self.candidates:
            return
        training = TrainingLoops(self.ctx.loops, self.train_frames)
        per_statement: dict[int, int] = {}
        for candidate in self.candidates:
            key = id(candidate.statement)
            per_statement[key] = per_statement.get(key, 0) + 1
        reported: set[int] = set()
        for candidate in self.candidates:
            if id(candidate.statement) in reported:
                continue  # one finding per statement
            repetition = self.repetition(candidate, training.is_training_step_loop)
            if repetition is None:
                continue
            if repetition.via and candidate.extra.get("evaluation"):
                continue  # an evaluation (no_grad, `evaluate()`) called from the loop: once per evaluation
            reported.add(id(candidate.statement))
            reads = per_statement[id(candidate.statement)]
            what = self.ctx.snippet(candidate.node, 48) + (
                f" (and {reads - 1} more read(s) in this statement)" if reads > 1 else ""
            )
            severity, why = self._materiality(candidate, repetition)
            self.report(
                candidate.node,
                f"{what} makes the CPU wait for every queued GPU kernel and copy the "
                f"value to the host {self.where(repetition)}; the GPU then idles while the next step is queued. "
                "Keep running values on the device (total += loss.detach()) and read them every N steps" + why,
                SavingsEstimate(
                    metric="time_factor",
                    low=TIME_FACTOR_LOW,
                    high=TIME_FACTOR_HIGH,
                    unit="x",
                    basis="one host sync per step stops host/device overlap: a step takes at most host + device "
                    "time instead of the larger of the two (PyTorch tuning guide: avoid unnecessary CPU-GPU "
                    "synchronization)",
                    hardware=self.ctx.hardware.key,
                    source=SOURCE_DERIVED,
                    assumptions=(
                        f"near {TIME_FACTOR_LOW:g}x when GPU kernels dominate the step, up to {TIME_FACTOR_HIGH:g}x "
                        "for launch-bound steps; the probe measures the step-time ratio",
                        *((why.strip(" ()"),) if why else ()),
                    ),
                ),
                statement=candidate.statement,
                severity=severity,
            )

    def _materiality(self, candidate, repetition: Repetition) -> tuple[Optional[str], str]:
        """(severity, note): info where the step already waits for the device."""
        if candidate.extra.get("step") in self.deciding or (
            not repetition.via and id(repetition.loop) in self.deciding
        ):
            return "info", " (this step already syncs for a host decision, so this read adds little)"
        if self.reinforcement:
            return "info", " (reinforcement learning: stepping the environment already syncs every env step)"
        return None, ""
