"""GO501: a GPU->CPU synchronisation on every training step."""

from __future__ import annotations

import libcst as cst

from greenops_lint.analysis.efficiency import (
    TrainingLoops,
    is_host_root,
    is_model_callee,
    tensor_evidence,
    uses_cuda,
    uses_torch,
)
from greenops_lint.analysis.loops import Repetition
from greenops_lint.finding import SavingsEstimate
from greenops_lint.rule import Invalid
from greenops_lint.rules.efficiency._shared import OPTIMIZER_RECEIVER, LoopBoundRule, receiver_name

# ## Estimate: the time factor of the training step. One sync per step stops host/device overlap: near 1x when
# GPU kernels dominate the step, up to 2x when host and device times are equal (launch-bound steps).
TIME_FACTOR_LOW = 1.0
TIME_FACTOR_HIGH = 2.0

# Calls that read a tensor's value on the host (and, for the chain check, `.numpy()` after one of them).
_SYNC_METHODS = ("item", "cpu", "tolist")
_HOST_CHAIN = ("item", "cpu", "numpy", "tolist")


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
    (it only works on host tensors, so the sync was the `.cpu()` before it).

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
    """

    code = "GO501"
    name = "host-sync-in-step-loop"
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

    def check_call(self, node: cst.Call) -> None:
        if not self.active:
            return
        func = node.func
        if isinstance(func, cst.Attribute) and not node.args:
            method = func.attr.value
            if method not in _SYNC_METHODS:
                return
            receiver = func.value
            if self._already_on_host(receiver) or is_host_root(self.ctx, receiver):
                return
            if method == "cpu" and is_model_callee(self.ctx, receiver):
                return  # moving a model, not reading a value
            if method == "tolist" and not tensor_evidence(self.ctx, receiver):
                return
            if self._feeds_environment():
                return
            self.record(node)
            return
        qualified = self.ctx.call_name(node)
        if qualified == "builtins.print":
            for arg in node.args:
                if self._device_value_in(arg.value):
                    self.record(node)
                    return
        elif qualified in ("builtins.float", "builtins.int") and len(node.args) == 1:
            if tensor_evidence(self.ctx, node.args[0].value) and not self._already_on_host(node.args[0].value):
                self.record(node)

    def _feeds_environment(self) -> bool:
        """`env.step(action.item())`: the host needs the value to act (RL), the
        sync cannot be avoided."""
        stack = self.ctx.stack
        for index in range(len(stack) - 2, max(len(stack) - 6, 0), -1):
            node = stack[index]
            if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "step":
                return not OPTIMIZER_RECEIVER.search(receiver_name(node.func.value))
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
            return bool(tensor_evidence(self.ctx, value)) and not self._already_on_host(value)
        return False

    @staticmethod
    def _already_on_host(node: cst.BaseExpression) -> bool:
        """`x.cpu().item()`, `x.numpy().tolist()`: the sync was the first call."""
        while True:
            if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
                if node.func.attr.value in _HOST_CHAIN:
                    return True
                node = node.func.value
            elif isinstance(node, (cst.Attribute, cst.Subscript)):
                node = node.value
            else:
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
        for candidate in self.candidates:
            repetition = self.repetition(candidate, training.is_training_step_loop)
            if repetition is None:
                continue
            self.report(
                candidate.node,
                f"{self.ctx.snippet(candidate.node, 48)} makes the CPU wait for every queued GPU kernel and copy the "
                f"value to the host {self.where(repetition)}; the GPU then idles while the next step is queued. "
                "Keep running values on the device (total += loss.detach()) and read them every N steps",
                SavingsEstimate(
                    metric="time_factor",
                    low=TIME_FACTOR_LOW,
                    high=TIME_FACTOR_HIGH,
                    unit="x",
                    basis="one host sync per step stops host/device overlap: a step takes at most host + device "
                    "time instead of the larger of the two (PyTorch tuning guide: avoid unnecessary CPU-GPU "
                    "synchronization)",
                    hardware=self.ctx.hardware.key,
                    assumptions=(
                        f"near {TIME_FACTOR_LOW:g}x when GPU kernels dominate the step, up to {TIME_FACTOR_HIGH:g}x "
                        "for launch-bound steps; the probe measures the step-time ratio",
                    ),
                ),
                statement=candidate.statement,
            )
