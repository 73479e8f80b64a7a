"""GO5xx: GPU time spent on nothing.

The patterns every PyTorch performance guide lists and that a reviewer can
see in the code: host synchronisations on every step, tensors built on the CPU
and copied over, evaluation that records autograd graphs, DataParallel,
emptying the allocator's cache, quadratic concatenation, full-precision
training, and compiled wrappers rebuilt inside loops.

The loop rules read the loop-context analysis (`analysis/loops.py`) and the
shared facts of `analysis/efficiency.py`: they record candidates during the
walk, with the guards around them, and decide in `leave_Module`, when every
loop is classified.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Optional

import libcst as cst

from greenops_lint.analysis.calls import get_arg, has_star_kwargs, literal_value
from greenops_lint.analysis.classes import is_model_constructor
from greenops_lint.analysis.dtypes import is_float64_dtype
from greenops_lint.analysis.efficiency import (
    Guards,
    exits_block as _exits_block,
    TrainingLoops,
    grad_mode,
    grad_switch,
    is_device_expr,
    is_host_root,
    is_model_callee,
    is_test_file,
    rare_guard,
    scan_guards,
    tensor_evidence,
    uses_cuda,
    uses_torch,
    walk_expr,
)
from greenops_lint.analysis.loops import FrameNode, LoopInfo, Repetition, describe_repetition, referenced_names
from greenops_lint.analysis.rewrite import with_keyword
from greenops_lint.finding import Fix, SavingsEstimate
from greenops_lint.rule import Invalid, Rule
from greenops_lint.analysis.guards import is_once_guard
from greenops_lint.analysis.tree import display_name

_OPTIMIZER_RECEIVER = re.compile(r"(opt|optim|optimizer|optimiser|scaler)", re.IGNORECASE)



def _receiver_name(node: cst.BaseExpression) -> str:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return node.attr.value
    return ""


def _is_train_call(node: cst.Call) -> bool:
    """`loss.backward()`, `accelerator.backward(loss)`, `optimizer.step()`, `tape.gradient`."""
    func = node.func
    if not isinstance(func, cst.Attribute):
        return False
    method = func.attr.value
    if method in ("backward", "gradient"):
        return True
    if method == "step":
        name = _receiver_name(func.value)
        return bool(_OPTIMIZER_RECEIVER.search(name)) and "sched" not in name.lower()
    return False


def _frame_name(frame: FrameNode) -> Optional[str]:
    return frame.name.value if isinstance(frame, cst.FunctionDef) else None


@dataclass(eq=False)
class Candidate:
    node: cst.CSTNode
    statement: Optional[cst.CSTNode]
    direct: tuple[LoopInfo, ...]
    frame: FrameNode
    guards: Guards
    extra: dict = field(default_factory=dict)


class LoopBoundRule(Rule):
    """Shared machinery: candidates recorded during the walk, decided once the
    loops are classified (not a rule itself)."""

    analyses = ("loops",)
    family = "efficiency"
    follow_calls = True
    # Remember the `if` blocks around calls of the module's functions, to tell
    # later whether a helper runs on every iteration (rules that follow calls).
    track_call_sites = True
    # Judge the guards around each candidate (rules whose findings a guard can silence).
    uses_guards = True

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        self.candidates: list[Candidate] = []
        self.train_frames: set[str] = set()
        # id() of a helper call -> the guard-like blocks around it in its function
        self.site_blocks: dict[int, tuple] = {}
        self._guard_memo: dict[int, bool] = {}

    def is_guard(self, node: cst.If, variant: set[str]) -> bool:
        return rare_guard(node.test, variant)

    def record(self, node: cst.CSTNode, **extra) -> Candidate:
        loops = self.ctx.loops
        direct = loops.loops_at()
        candidate = Candidate(
            node=node,
            statement=self.ctx.enclosing_statement(),
            direct=direct,
            frame=loops.current_frame,
            guards=scan_guards(self.ctx, direct, self.is_guard) if self.uses_guards else Guards(),
            extra=extra,
        )
        self.candidates.append(candidate)
        return candidate

    def visit_Call(self, node: cst.Call) -> None:
        if _is_train_call(node):
            name = _frame_name(self.ctx.loops.current_frame)
            if name is not None:
                self.train_frames.add(name)
        func = node.func
        if self.track_call_sites and (
            type(func) is cst.Name
            or (type(func) is cst.Attribute and type(func.value) is cst.Name and func.value.value == "self")
        ):
            blocks = self._blocks_around()
            if blocks:
                self.site_blocks[id(node)] = blocks
        self.check_call(node)

    def _blocks_around(self) -> tuple:
        """The `if` bodies and exception handlers between the node being visited
        and the top of its function (their tests are judged later, if needed)."""
        stack = self.ctx.stack
        found = []
        for index in range(len(stack) - 2, -1, -1):
            node = stack[index]
            node_type = type(node)
            if node_type is cst.FunctionDef or node_type is cst.Lambda:
                break
            if node_type is cst.If and stack[index + 1] is node.body:
                found.append(node)
            elif node_type is cst.ExceptHandler:
                found.append(node)
        return tuple(found)

    def site_is_guarded(self, call: cst.Call) -> bool:
        for block in self.site_blocks.get(id(call), ()):
            if type(block) is cst.ExceptHandler:
                return True
            memo = self._guard_memo.get(id(block))
            if memo is None:
                memo = self._guard_memo[id(block)] = self.is_guard(block, set()) or _exits_block(block.body)
            if memo:
                return True
        return False

    def check_call(self, node: cst.Call) -> None:  # pragma: no cover - overridden
        pass

    def repetition(self, candidate: Candidate, accept: Callable[[LoopInfo], bool]) -> Optional[Repetition]:
        """The first loop that runs the candidate on every iteration and that
        `accept` takes: loops around it, then loops around the calls of its
        function (two calls deep). A guard stops the search."""
        loops = self.ctx.loops
        for repetition in loops.repetitions(candidate.direct, candidate.frame):
            loop = repetition.loop
            if not repetition.via:
                if id(loop) in candidate.guards.loops:
                    return None
            else:
                if not self.follow_calls or candidate.guards.frame:
                    return None
                if any(self.site_is_guarded(site.call) for site in repetition.via):
                    continue
            if loop.is_retry:
                continue
            if accept(loop):
                return repetition
        return None

    @staticmethod
    def where(repetition: Repetition) -> str:
        return describe_repetition(repetition)


# -- GO501 ------------------------------------------------------------------------------------


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
        """
        import torch
        device = torch.device("cuda")
        for x, y in train_loader:
            loss = criterion(model(x.to(device)), y.to(device))
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
        """,
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
            if method not in ("item", "cpu", "tolist"):
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
            self.record(node, what=f".{method}()")
            return
        qualified = self.ctx.call_name(node)
        if qualified == "builtins.print":
            for arg in node.args:
                if self._device_value_in(arg.value):
                    self.record(node, what="print() of a tensor")
                    return
        elif qualified in ("builtins.float", "builtins.int") and len(node.args) == 1:
            if tensor_evidence(self.ctx, node.args[0].value) and not self._already_on_host(node.args[0].value):
                self.record(node, what=f"{qualified[9:]}() of a tensor")

    def _feeds_environment(self) -> bool:
        """`env.step(action.item())`: the host needs the value to act (RL), the
        sync cannot be avoided."""
        stack = self.ctx.stack
        for index in range(len(stack) - 2, max(len(stack) - 6, 0), -1):
            node = stack[index]
            if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "step":
                return not _OPTIMIZER_RECEIVER.search(_receiver_name(node.func.value))
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
                if node.func.attr.value in ("item", "cpu", "numpy", "tolist"):
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
                    low=1.0,
                    high=2.0,
                    unit="x",
                    basis="one host sync per step stops host/device overlap: a step takes at most host + device time "
                    "instead of the larger of the two (PyTorch tuning guide: avoid unnecessary CPU-GPU synchronization)",
                    hardware=self.ctx.hardware.key,
                    assumptions=("near 1x when GPU kernels dominate the step, up to 2x for launch-bound steps; "
                                 "the probe measures the step-time ratio",),
                ),
                statement=candidate.statement,
            )


# -- GO502 ------------------------------------------------------------------------------------

# `torch.tensor(data)` is not here: with `device=` PyTorch still builds the
# tensor on the host and copies it (torch/csrc/utils/tensor_new.cpp), so there
# is nothing to save.
_LEGACY_CONSTRUCTORS = frozenset({"Tensor", "FloatTensor", "LongTensor", "IntTensor", "BoolTensor", "HalfTensor", "ByteTensor"})
_FACTORIES = frozenset(
    {"zeros", "ones", "full", "empty", "arange", "linspace", "logspace", "eye", "rand", "randn", "randint", "randperm"}
) | _LEGACY_CONSTRUCTORS
_PURE_METHODS = frozenset(
    {
        "float", "long", "int", "half", "bfloat16", "double", "bool", "byte", "unsqueeze", "squeeze", "view",
        "reshape", "repeat", "expand", "t", "transpose", "permute", "flip", "contiguous", "flatten",
        "tril", "triu", "clone", "fill_", "zero_", "normal_", "uniform_", "exp", "log", "sqrt", "sin", "cos",
        "cumsum", "roll", "repeat_interleave", "pow", "mul", "add", "div", "neg", "abs", "type",
    }
)


class CpuTensorThenMoved(Rule):
    """Creates a tensor on the CPU and then copies it to the GPU.

    ## What it does
    Flags `torch.zeros/ones/full/empty/arange/linspace/logspace/eye/
    rand/randn/randint/randperm(...)` (and legacy constructors by size,
    `torch.FloatTensor(n, 512)`) without `device=`, immediately moved with
    `.cuda()` or `.to(<device>)` (a `"cuda"` string, a device index, a name
    such as `device`, `torch.device(...)`, `x.device`, `args.device`), also
    through shape and dtype methods (`torch.arange(n).unsqueeze(0).to(dev)`).

    ## Why is this bad
    The tensor is allocated and filled in host memory, then copied over PCIe
    (and the copy synchronises with the host when the source is not pinned),
    although the GPU could have created it in place. The PyTorch tuning guide
    says to "create tensors directly on the target device", and its profiler
    ships a pattern (`ExtraCUDACopyPattern`) for exactly this. In a training
    step the cost repeats on every iteration.

    Not flagged: `.to(dtype)` or `.to(memory_format=...)` alone, `.to("cpu")`,
    factories that already pass `device=`, pinned staging buffers
    (`pin_memory=True`), random factories drawing from a CPU `generator=`
    (reproducible across devices), `*_like` factories, and tensors built from
    host data: `torch.tensor(data)`, `torch.from_numpy(...)`,
    `torch.as_tensor(...)`, `torch.FloatTensor([...])`. For those the data
    has to cross PCIe anyway: even `torch.tensor(data, device="cuda")` builds
    the tensor on the host and copies it (PyTorch's `tensor_new.cpp`), so
    there is nothing to save.

    ## Fix
    Pass the device to the factory: `torch.zeros(n, device=device)`,
    `torch.arange(n, device=x.device)`; move `dtype=` in too when the call
    converted it. Safe to rewrite for the deterministic factories (zeros,
    ones, full, empty, arange, linspace, eye); for `rand`/`randn`/
    `randint`/`randperm` the CUDA generator produces a different random
    stream than the CPU one, so results change (seeded runs included).
    Autofix (safe, deterministic factories only): `device=` moves into the
    factory and the `.to(device)` / `.cuda()` goes away; a move with other
    arguments (`.to(dev, dtype)`, `.cuda(1)`, `non_blocking=`) is left alone.

    ## Estimate
    Repeated work: one extra host allocation and host-to-device copy each
    time the line runs (the size is stated when the shape is literal); the
    probe times the copy.
    """

    code = "GO502"
    name = "cpu-tensor-then-moved"
    family = "efficiency"
    tokens = ("cuda", ".to(")
    fixable = True
    fix_safety = "safe"
    # Factories whose result is the same when created on the device: the
    # safe fix rewrites these; random ones change the RNG stream. (`torch.tensor`
    # is listed but not reported: with device= it is still built on the host.)
    safe_fix_factories = frozenset({"zeros", "ones", "full", "empty", "arange", "linspace", "eye", "tensor"})
    INVALID = [
        Invalid(
            """
            import torch
            mask = torch.zeros(64, 128).cuda()
            """,
            line=2,
            message="torch.zeros",
            fixed="""
            import torch
            mask = torch.zeros(64, 128, device="cuda")
            """,
        ),
        """
        import torch as T
        device = T.device("cuda")
        pos = T.arange(512).unsqueeze(0).to(device)
        """,
        """
        from torch import randn
        noise = randn(8, 3, 32, 32).to("cuda:0")
        """,
    ]
    VALID = [
        """
        import torch
        mask = torch.zeros(64, 128, device="cuda")
        """,
        """
        import torch
        half = torch.ones(4).to(torch.float16)
        """,
        """
        import torch
        x = torch.from_numpy(array).to(device)
        """,
    ]

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if not isinstance(func, cst.Attribute) or func.attr.value not in ("to", "cuda"):
            return
        if func.attr.value == "to" and not self._moves_to_device(node):
            return
        inner = func.value
        while isinstance(inner, cst.Call) and isinstance(inner.func, cst.Attribute) and inner.func.attr.value in _PURE_METHODS:
            inner = inner.func.value
        if not isinstance(inner, cst.Call):
            return
        qualified = self.ctx.call_name(inner) or ""
        factory = qualified[6:] if qualified.startswith("torch.") else ""
        if factory not in _FACTORIES:
            return
        if get_arg(inner, "out") is not None or has_star_kwargs(inner):
            return
        if factory in _LEGACY_CONSTRUCTORS and not self._sizes_only(inner):
            return  # built from host data: it is copied to the device either way
        if get_arg(inner, "generator") is not None:
            return  # a CPU generator (reproducible across devices) needs a host tensor
        pinned = get_arg(inner, "pin_memory")
        if pinned is not None and literal_value(pinned.value) is not False:
            return
        device = get_arg(inner, "device")
        if device is not None and not (isinstance(literal_value(device.value), str) and literal_value(device.value).startswith("cpu")):
            return
        random = factory in ("rand", "randn", "randint", "randperm")
        if factory in self.safe_fix_factories:
            fix = f"pass device= to torch.{factory}()"
        elif random:
            fix = f"pass device= to torch.{factory}() (this changes the random stream: CUDA and CPU generators differ)"
        else:
            fix = "create it with torch.empty(..., device=...) (or zeros)"
        numel = self._literal_numel(inner, factory)
        size = f" ({numel * 4:,} bytes at float32)" if numel else ""
        self.report(
            node,
            f"torch.{factory}(...) is built in host memory and then copied to the GPU{size}; {fix} "
            "to create it there directly",
            SavingsEstimate(
                metric="repeated_work",
                low=1.0,
                high=1.0,
                unit="extra host allocation and host-to-device copy per execution",
                basis="PyTorch tuning guide: create tensors directly on the target device; "
                "profiler ExtraCUDACopyPattern times torch.ones(n).to('cuda') against torch.ones(n, device='cuda')",
                hardware=self.ctx.hardware.key,
                assumptions=(("the shape is literal" if numel else "the size is not literal; the probe times the copy"),),
            ),
            fix=self._fix(node, inner) if factory in self.safe_fix_factories else None,
        )

    @staticmethod
    def _fix(move: cst.Call, factory: cst.Call) -> Optional[Fix]:
        """`torch.zeros(n).unsqueeze(0).to(dev)` -> `torch.zeros(n, device=dev).unsqueeze(0)`."""
        method = move.func.attr.value
        if method == "cuda" and not move.args:
            device: cst.BaseExpression = cst.SimpleString('"cuda"')
        elif method == "to" and len(move.args) == 1 and (move.args[0].keyword is None or move.args[0].keyword.value == "device"):
            device = move.args[0].value
        else:
            return None  # .cuda(1), .to(dev, dtype), non_blocking=...: left to a human
        depth = 0
        receiver = move.func.value
        while receiver is not factory:
            receiver = receiver.func.value
            depth += 1

        def rewrite(updated: cst.Call) -> cst.BaseExpression:
            def rebuild(node: cst.BaseExpression, level: int) -> cst.BaseExpression:
                if level == 0:
                    return with_keyword(node, "device", device)
                inner = rebuild(node.func.value, level - 1)
                return node.with_changes(func=node.func.with_changes(value=inner))

            return rebuild(updated.func.value, depth)

        return Fix(move, rewrite, safe=True, title="create it on the device")

    @staticmethod
    def _sizes_only(call: cst.Call) -> bool:
        """`torch.FloatTensor(n, 512)` allocates by size; `torch.FloatTensor([1, 2])`
        and `torch.FloatTensor(values)` (one name: data or a size?) are not followed."""
        args = [a.value for a in call.args if a.keyword is None]
        sizes = (cst.Integer, cst.Name, cst.Attribute, cst.BinaryOperation, cst.Subscript)
        if len(args) == 1:
            return isinstance(args[0], cst.Integer)
        return len(args) > 1 and all(isinstance(a, sizes) for a in args)

    def _moves_to_device(self, node: cst.Call) -> bool:
        target = get_arg(node, "device")
        if target is None:
            first = get_arg(node, None, 0)
            if first is None:
                return False
            target = first
        return is_device_expr(self.ctx, target.value)

    @staticmethod
    def _literal_numel(call: cst.Call, factory: str) -> Optional[int]:
        if factory not in ("zeros", "ones", "empty", "rand", "randn", "full"):
            return None
        args = [a.value for a in call.args if a.keyword is None]
        if factory == "full":
            args = args[:1]
        if len(args) == 1 and isinstance(args[0], (cst.Tuple, cst.List)):
            args = [e.value for e in args[0].elements]
        numel = 1
        for arg in args:
            value = literal_value(arg)
            if not isinstance(value, int) or isinstance(value, bool):
                return None
            numel *= value
        return numel if args else None


# -- GO503 ------------------------------------------------------------------------------------

_EVAL_WORDS = frozenset(
    {
        "eval", "evaluate", "evaluation", "evaluator", "validate", "validation", "valid", "val", "test", "testing",
        "predict", "prediction", "predictions", "infer", "inference", "sample", "sampling", "generate", "generation",
    }
)
# Lightning runs these under no_grad/inference_mode.
_FRAMEWORK_NO_GRAD = frozenset(
    {
        "validation_step", "test_step", "predict_step", "validation_epoch_end", "test_epoch_end",
        "on_validation_epoch_end", "on_test_epoch_end", "on_predict_epoch_end", "on_validation_batch_end",
    }
)
# Hugging Face Trainer methods (in a Trainer subclass) that run under no_grad.
_TRAINER_NO_GRAD = frozenset({"evaluate", "prediction_step", "evaluation_loop", "predict"})
_GRAD_NEEDED = re.compile(r"\.backward\(|autograd\.grad\b|requires_grad|enable_grad|\.grad\b|torch\.func\.grad|functorch")
_FROZEN = re.compile(r"requires_grad_\(\s*False\s*\)|requires_grad\s*=\s*False")


def _is_eval_name(name: str) -> bool:
    return any(word in _EVAL_WORDS for word in name.lower().split("_"))


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
    `@torch.no_grad()` decorator around it, here or at every call site.

    ## Why is this bad
    `model.eval()` only switches dropout and batch-norm behaviour; it does not
    stop autograd. Every operation still records a graph node and keeps its
    inputs alive for a backward pass that never comes, so evaluation uses
    activation memory like training (fairchem PR #199: memory allocated
    during validation went from 3.4-8.1 GB to 1.1-2.3 GB with `no_grad`) and spends time on
    bookkeeping; smaller batches and OOMs follow.

    Not flagged: Lightning `validation_step`/`test_step`/`predict_step` and
    HF `Trainer.evaluate`/`prediction_step` (the framework disables
    gradients), loops that train (`.backward()`, `optimizer.step()`),
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
    Time factor of the evaluation work (not of training): 1x to 1.2x; the
    main saving is activation memory, which the probe measures with
    `torch.cuda.max_memory_allocated`.
    """

    code = "GO503"
    name = "eval-without-no-grad"
    track_call_sites = False
    uses_guards = False
    tokens = ("eval", "test", "valid", "predict", "infer", "sample", "generat")
    INVALID = [
        """
        import torch
        model.eval()
        preds = []
        for x, _ in test_loader:
            preds.append(model(x).argmax(1))
        """,
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
        if type(parent) is cst.Expr and grad_switch(self.ctx, node) == "off":
            state.grad_off = True  # torch.set_grad_enabled(False) as a statement
        helper = type(func) is cst.Name or (
            type(func) is cst.Attribute and type(func.value) is cst.Name and func.value.value == "self"
        )
        model = type(parent) is not cst.Expr and is_model_callee(self.ctx, func)
        if not (helper or model):
            return
        mode = "off" if (state.grad_off or self.states[0].grad_off) else grad_mode(self.ctx)
        if helper:
            if mode == "off":
                self.site_no_grad.add(id(node))
            if state.eval_mode:
                self.site_eval.add(id(node))
        if model:
            # (a result thrown away is a warm-up or benchmark loop, not an evaluation)
            names = [n.name.value for n in self.ctx.stack if type(n) is cst.FunctionDef]
            self.record(node, mode=mode, eval_mode=state.eval_mode, functions=names)

    def leave_Module(self, node: cst.Module) -> None:
        if not self.candidates or self.frozen:
            return
        loops = self.ctx.loops
        reported: set[int] = set()
        for candidate in self.candidates:
            if candidate.extra["mode"] is not None:
                continue
            frame = candidate.frame
            if any(name in _FRAMEWORK_NO_GRAD for name in candidate.extra["functions"]):
                continue
            if isinstance(frame, cst.FunctionDef) and frame.name.value in _TRAINER_NO_GRAD:
                cls = loops.frame_class.get(id(frame))
                if cls is not None and any("Trainer" in self.ctx.module.code_for_node(b.value) for b in cls.bases):
                    continue
            if not (
                candidate.extra["eval_mode"]
                or any(_is_eval_name(n) for n in candidate.extra["functions"])
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
                    low=1.0,
                    high=1.2,
                    unit="x eval time",
                    basis="autograd bookkeeping and retained activations (PyTorch tuning guide: no_grad accelerates "
                    "execution and reduces memory); fairchem PR #199: validation memory 3.4-8.1 GB -> 1.1-2.3 GB",
                    hardware=self.ctx.hardware.key,
                    assumptions=("the time share is an assumption (small for large kernels); "
                                 "the memory saving is measured by the probe",),
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
        if not _is_eval_name(frame.name.value):
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

    def _sites_no_grad(self, frame: cst.FunctionDef) -> bool:
        """Some caller already runs this function under no_grad: the author
        handles it there."""
        return any(id(site.call) in self.site_no_grad for site in self.ctx.loops.call_sites.get(frame.name.value, ()))


# -- GO504 ------------------------------------------------------------------------------------


class DataParallelInsteadOfDDP(Rule):
    """Uses `torch.nn.DataParallel` instead of DistributedDataParallel.

    ## What it does
    Flags `torch.nn.DataParallel(...)` and `torch.nn.parallel.DataParallel(...)`
    (any alias) and the functional `torch.nn.parallel.data_parallel(...)`.

    ## Why is this bad
    DataParallel runs one Python process that drives all GPUs from threads:
    on every step it copies the model from GPU 0 to the others, scatters the
    batch, gathers the outputs and reduces the gradients on GPU 0, all under
    the GIL. GPU 0 is a bottleneck and the other GPUs wait. The PyTorch docs
    recommend DistributedDataParallel even on a single machine; Hugging Face
    measured DP 110 s vs DDP 101 s for the same 200 GPT-2 steps on two
    NVLinked GPUs, and the gap grows with the GPU count.

    Not flagged: `DistributedDataParallel`, and `isinstance(m, nn.DataParallel)`
    checks (handling models that others wrapped).

    ## Fix
    Launch one process per GPU with `torchrun` and wrap the model in
    `torch.nn.parallel.DistributedDataParallel` (with a `DistributedSampler`),
    or let `accelerate`/Lightning do it.

    ## Estimate
    Time factor of training: 1.09x (Hugging Face, 2 GPUs with NVLink; more
    with more GPUs or without NVLink, not quantified here).
    """

    code = "GO504"
    name = "dataparallel-instead-of-ddp"
    family = "efficiency"
    tokens = ("DataParallel", "data_parallel")
    INVALID = [
        """
        import torch.nn as nn
        model = nn.DataParallel(model)
        """,
        """
        from torch.nn.parallel import DataParallel as DP
        net = DP(net, device_ids=[0, 1])
        """,
    ]
    VALID = [
        """
        from torch.nn.parallel import DistributedDataParallel as DDP
        model = DDP(model, device_ids=[rank])
        """,
        """
        import torch.nn as nn
        inner = model.module if isinstance(model, nn.DataParallel) else model
        """,
    ]

    _NAMES = frozenset(
        {
            "torch.nn.DataParallel", "torch.nn.parallel.DataParallel", "torch.nn.parallel.data_parallel.DataParallel",
            "torch.nn.parallel.data_parallel",
        }
    )

    def visit_Call(self, node: cst.Call) -> None:
        if self.ctx.call_name(node) not in self._NAMES:
            return
        self.report(
            node,
            "DataParallel drives every GPU from one process: each step it re-copies the model from GPU 0, scatters "
            "the batch and gathers outputs and gradients there; use DistributedDataParallel (torchrun, one process "
            "per GPU)",
            SavingsEstimate(
                metric="time_factor",
                low=1.09,
                high=1.09,
                unit="x",
                basis="Hugging Face 'Efficient training on multiple GPUs': 200 GPT-2 steps on 2 NVLinked GPUs, "
                "DP 110 s vs DDP 101 s",
                hardware=self.ctx.hardware.key,
                assumptions=("2 GPUs with NVLink; the gap grows with the GPU count (not quantified)",),
            ),
        )


# -- GO505 ------------------------------------------------------------------------------------

_EMPTY_CACHE = frozenset(
    {"torch.cuda.empty_cache", "torch.mps.empty_cache", "torch.xpu.empty_cache", "torch.npu.empty_cache", "torch.cuda.memory.empty_cache"}
)


class EmptyCacheInLoop(LoopBoundRule):
    """Empties the CUDA caching allocator on every step.

    ## What it does
    Flags `torch.cuda.empty_cache()` (also `torch.mps`/`torch.xpu`) that runs
    on every iteration of a step loop (a training or data loop, Lightning's
    `training_step`/`validation_step`, or a function of the module called
    from one, two calls deep), unguarded or under a periodic guard with a
    literal period below 100 steps.

    ## Why is this bad
    PyTorch keeps freed GPU memory in a cache so that the next step can reuse
    it without `cudaMalloc`/`cudaFree`, which synchronise the device.
    `empty_cache()` synchronises, returns every cached block to the driver,
    and the next step has to allocate it all again. It does not give your
    own process more memory. Hugging Face documents its
    `torch_empty_cache_steps` option as lowering peak VRAM "at a cost of about
    10% slower performance".

    Not flagged: once per epoch (outside the step loop), under a periodic
    guard of 100 steps or more (or a non-literal period), in an exception
    handler (the OOM-recovery pattern), or under a one-off test.

    ## Fix
    Remove it. For fragmentation use
    `PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True`; to hand memory to
    another process, call it once after the loop.

    ## Estimate
    Time factor of the step: 1.1x (Hugging Face `TrainingArguments` docs).
    """

    code = "GO505"
    name = "empty-cache-in-loop"
    tokens = ("empty_cache",)
    INVALID = [
        """
        import torch
        for x, y in train_loader:
            loss = model(x).sum()
            loss.backward()
            optimizer.step()
            torch.cuda.empty_cache()
        """,
    ]
    VALID = [
        """
        import torch
        for epoch in range(10):
            for x, y in train_loader:
                loss = model(x).sum()
                loss.backward()
                optimizer.step()
            torch.cuda.empty_cache()
        """,
        """
        import torch
        for step, (x, y) in enumerate(train_loader):
            loss = model(x).sum()
            loss.backward()
            if step % 500 == 0:
                torch.cuda.empty_cache()
        """,
    ]

    def is_guard(self, node: cst.If, variant: set[str]) -> bool:
        return rare_guard(node.test, variant, min_period=100)

    def where(self, repetition: Repetition) -> str:
        loop = repetition.loop
        if loop.framework or loop.has_train_step:
            return super().where(repetition)
        count = f" ({loop.count} iterations)" if loop.count else ""
        via = f" that calls {' -> '.join(f'{site.name}()' for site in repetition.via)}" if repetition.via else ""
        return f"on every batch of the data loop{count}{via}"

    def check_call(self, node: cst.Call) -> None:
        if self.ctx.call_name(node) in _EMPTY_CACHE:
            self.record(node)

    def leave_Module(self, node: cst.Module) -> None:
        for candidate in self.candidates:
            repetition = self.repetition(candidate, lambda loop: loop.kind == "step" or loop.iterates_data)
            if repetition is None:
                continue
            self.report(
                candidate.node,
                f"empty_cache() synchronises the GPU and returns all cached memory to the driver {self.where(repetition)}, "
                "so the next step must allocate it again; remove it (or call it once after the loop)",
                SavingsEstimate(
                    metric="time_factor",
                    low=1.1,
                    high=1.1,
                    unit="x",
                    basis="Hugging Face TrainingArguments.torch_empty_cache_steps: lowers peak VRAM "
                    "'at a cost of about 10% slower performance'",
                    hardware=self.ctx.hardware.key,
                    assumptions=("called every step; the probe measures the step-time ratio",),
                ),
                statement=candidate.statement,
            )


# -- GO506 ------------------------------------------------------------------------------------

_SEQUENCE_CONCATS = frozenset(
    {
        "torch.cat", "torch.concat", "torch.concatenate", "torch.vstack", "torch.hstack", "torch.row_stack",
        "numpy.concatenate", "numpy.vstack", "numpy.hstack", "numpy.row_stack", "numpy.column_stack", "numpy.dstack",
        "pandas.concat", "tensorflow.concat", "jax.numpy.concatenate", "jax.numpy.vstack", "jax.numpy.hstack",
        "polars.concat",
    }
)
_APPENDS = frozenset({"numpy.append"})
_SEQUENCE_KEYWORDS = ("tensors", "arrays", "tup", "objs", "values", "items")




class GrowingConcatInLoop(Rule):
    """Grows an array, tensor or DataFrame by concatenating to it in a loop.

    ## What it does
    Flags `x = torch.cat([x, y])`, `x = np.concatenate((x, y))`,
    `x = np.append(x, y)`, `x = np.vstack([x, y])`, `df = pd.concat([df, row])`,
    `x = tf.concat([x, y], 0)` (and `self.x = ...` forms) inside a `for` or
    `while` loop, when the accumulator is not read anywhere else in the loop
    (so it could be collected and concatenated once).

    ## Why is this bad
    Each concatenation allocates a new buffer and copies everything gathered
    so far: n iterations copy about n^2/2 chunks instead of n, so the loop
    gets quadratically slower as it grows (and on the GPU churns the
    allocator). The pandas docs warn that `concat` "makes a full copy of the
    data, and ... constantly reusing this function can create a significant
    performance hit".

    Not flagged: loops that read the accumulator on every iteration
    (autoregressive decoding `idx = torch.cat([idx, next_token], 1)` feeds it
    to the model; DenseNet blocks feed it to the next layer), sliced results
    (`buf = torch.cat([buf, y])[-k:]`, a bounded window), loops of at most two
    iterations, and list appends.

    ## Fix
    Append the pieces to a Python list and concatenate once after the loop
    (`torch.cat(chunks)`, `np.concatenate(chunks)`, `pd.concat(frames)`); in
    TensorFlow graphs use `tf.TensorArray`.

    ## Estimate
    Repeated work: each chunk is copied (n - 1) / 2 extra times on average
    for n iterations (literal counts), otherwise 4.5-499.5 (10-1000
    iterations assumed).
    """

    code = "GO506"
    name = "growing-concat-in-loop"
    family = "efficiency"
    tokens = ("cat(", "concat", "append(", "stack(")
    INVALID = [
        """
        import torch
        all_preds = torch.empty(0)
        for x, _ in loader:
            all_preds = torch.cat([all_preds, model(x)])
        """,
        """
        import pandas as pd
        df = pd.DataFrame()
        for path in paths:
            df = pd.concat([df, pd.read_csv(path)], ignore_index=True)
        """,
        """
        import numpy as np
        feats = np.zeros((0, 128))
        for batch in batches:
            feats = np.append(feats, encode(batch), axis=0)
        """,
    ]
    VALID = [
        """
        import torch
        chunks = []
        for x, _ in loader:
            chunks.append(model(x))
        all_preds = torch.cat(chunks)
        """,
        """
        import torch
        for _ in range(max_new_tokens):
            logits = model(idx)[:, -1, :]
            idx_next = torch.multinomial(logits.softmax(-1), 1)
            idx = torch.cat((idx, idx_next), dim=1)
        """,
        """
        import torch
        for layer in self.layers:
            new = layer(x)
            x = torch.cat([x, new], 1)
        """,
    ]

    def visit_Assign(self, node: cst.Assign) -> None:
        if len(node.targets) != 1 or not isinstance(node.value, cst.Call):
            return
        target = node.targets[0].target
        if not isinstance(target, (cst.Name, cst.Attribute)):
            return
        call = node.value
        qualified = self.ctx.call_name(call)
        if qualified not in _SEQUENCE_CONCATS and qualified not in _APPENDS:
            return
        target_code = self.ctx.module.code_for_node(target)
        if qualified in _SEQUENCE_CONCATS:
            sequence = get_arg(call, None, 0)
            if sequence is None:
                for keyword in _SEQUENCE_KEYWORDS:
                    sequence = get_arg(call, keyword)
                    if sequence is not None:
                        break
            if sequence is None or not isinstance(sequence.value, (cst.List, cst.Tuple)):
                return
            elements = [e.value for e in sequence.value.elements if not isinstance(e, cst.StarredElement)]
            accumulators = [e for e in elements if self.ctx.module.code_for_node(e) == target_code]
            if len(elements) < 2 or not accumulators:
                return
            shape = f"{target_code} = {display_name(qualified)}([{target_code}, ...])"
        elif qualified in _APPENDS:
            first = get_arg(call, "arr", 0)
            if first is None or self.ctx.module.code_for_node(first.value) != target_code:
                return
            accumulators = [first.value]
            shape = f"{target_code} = {display_name(qualified)}({target_code}, ...)"
        else:
            return
        loop = self._innermost_loop()
        if loop is None or self._tiny(loop) or self._read_elsewhere(loop, [target, *accumulators], target, target_code):
            return
        count = self._count(loop)
        if count:
            low = high = round((count - 1) / 2, 1)
            assumption = f"the loop runs {count} times (literal)"
        else:
            low, high = 4.5, 499.5
            assumption = "the iteration count is not literal: 10-1000 iterations assumed"
        self.report(
            node,
            f"{shape} copies everything gathered so far on every iteration "
            "(quadratic in the number of iterations); append the pieces to a list and concatenate once after the loop",
            SavingsEstimate(
                metric="repeated_work",
                low=low,
                high=high,
                unit="extra copies of each chunk",
                basis="n concatenations onto a growing buffer copy about n^2/2 chunks instead of n "
                "(pandas docs: concat makes a full copy of the data each time)",
                hardware=self.ctx.hardware.key,
                assumptions=(assumption,),
            ),
        )

    def _innermost_loop(self) -> Optional[cst.CSTNode]:
        for node in reversed(self.ctx.stack[:-1]):
            if isinstance(node, (cst.For, cst.While)):
                return node
            if isinstance(node, (cst.FunctionDef, cst.Lambda, cst.ClassDef)):
                return None
        return None

    def _read_elsewhere(self, loop: cst.CSTNode, own: list, target: cst.BaseExpression, code: str) -> bool:
        """The accumulator is used in the loop apart from this assignment's
        target and the accumulator element itself (and `x is None` tests): it
        is needed on every iteration."""
        inside = {id(n) for node in own for n in walk_expr(node)}
        stack: list[cst.CSTNode] = [loop]
        while stack:
            node = stack.pop()
            if id(node) in inside:
                continue
            if isinstance(node, cst.Comparison) and any(
                isinstance(c.operator, (cst.Is, cst.IsNot)) and literal_value(c.comparator) is None for c in node.comparisons
            ):
                continue
            if isinstance(node, cst.Assign):
                stack.append(node.value)  # rebinding the name is not a read
                continue
            if isinstance(target, cst.Name) and isinstance(node, cst.Name) and node.value == target.value:
                return True
            if isinstance(target, cst.Attribute) and isinstance(node, cst.Attribute) and self.ctx.module.code_for_node(node) == code:
                return True
            stack.extend(node.children)
        return False

    def _count(self, loop: cst.CSTNode) -> Optional[int]:
        if isinstance(loop, cst.For) and isinstance(loop.iter, cst.Call) and self.ctx.call_name(loop.iter) == "builtins.range":
            values = [literal_value(a.value) for a in loop.iter.args if a.keyword is None]
            if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                start, stop = (0, values[0]) if len(values) == 1 else (values[0], values[1])
                step = values[2] if len(values) > 2 else 1
                return max(0, (stop - start + step - 1) // step) if step > 0 else None
        if isinstance(loop, cst.For) and isinstance(loop.iter, (cst.List, cst.Tuple)):
            return len(loop.iter.elements)
        return None

    def _tiny(self, loop: cst.CSTNode) -> bool:
        count = self._count(loop)
        return count is not None and count <= 2


# -- GO507 ------------------------------------------------------------------------------------

_MIXED_PRECISION_TEXT = re.compile(
    r"autocast|GradScaler|torch\.amp|cuda\.amp|mixed_precision|\.half\(\)|bfloat16|float16|\bprecision\s*=|"
    r"\bfp16\b|\bbf16\b|deepspeed|set_float32_matmul_precision\(\s*[\"']medium"
)
_HF_ARGUMENTS = frozenset(
    {
        "transformers.TrainingArguments", "transformers.Seq2SeqTrainingArguments", "transformers.training_args.TrainingArguments",
        "trl.SFTConfig", "trl.DPOConfig", "trl.GRPOConfig", "trl.RewardConfig", "trl.ORPOConfig", "trl.KTOConfig",
    }
)
_LIGHTNING_TRAINERS = frozenset({"lightning.pytorch.Trainer", "lightning.Trainer", "lightning.pytorch.trainer.Trainer"})


class NoMixedPrecision(LoopBoundRule):
    """Trains on a CUDA GPU in full float32 precision.

    ## What it does
    Flags the training step loop of a PyTorch module that uses CUDA when
    nothing in the module enables mixed precision (`torch.autocast`,
    `torch.cuda.amp`/`torch.amp`, `GradScaler`, accelerate's
    `mixed_precision`, `.half()`/`bfloat16`, Lightning `precision=`,
    DeepSpeed); Hugging Face `TrainingArguments` (and `Seq2SeqTrainingArguments`,
    TRL configs) without `bf16=`/`fp16=`; and a Lightning `Trainer(...)`
    without `precision=`. Off by default (info): whether it pays depends on the
    GPU and the model size, which only the probe can tell.

    ## Why is this bad
    Tensor cores run bf16/fp16 matrix math at several times the float32 rate
    and half the bytes move through memory. The PyTorch tuning guide reports
    "up to 3x overall speedup on Volta and newer GPU architectures"; the
    Hugging Face docs measured bert-large fine-tuning at 57.8 s in float32 and
    27.5 s with `fp16=True` (2.1x). Small models and small batches gain little.

    Not flagged: modules that mention any mixed-precision API or make a model
    float64 on purpose (`model.double()`, `torch.set_default_dtype(torch.float64)`:
    numerically sensitive code), loops driven by
    accelerate's `Accelerator()` or `LightningCLI` (precision is set on the
    command line or by `accelerate config`), CPU-only code,
    `TrainingArguments(..., use_cpu=True)`/`no_cuda=True`, `deepspeed=`
    configs, and calls with `**kwargs`.

    ## Fix
    Wrap forward and loss in `with torch.autocast("cuda", dtype=torch.bfloat16):`
    (Ampere and newer); on V100/T4 use `float16` with `torch.amp.GradScaler`.
    `TrainingArguments(bf16=True)`; Lightning `Trainer(precision="bf16-mixed")`.

    ## Estimate
    Time factor of training: 1x to 3x (PyTorch tuning guide: up to 3x;
    Hugging Face example: 2.1x); the probe measures it on your GPU.
    """

    code = "GO507"
    name = "no-mixed-precision"
    track_call_sites = False
    severity = "info"
    default_enabled = False
    tokens = ("backward", "TrainingArguments", "Trainer", "Config")
    INVALID = [
        """
        import torch
        model = Net().cuda()
        for x, y in train_loader:
            loss = criterion(model(x.cuda()), y.cuda())
            loss.backward()
            optimizer.step()
        """,
        """
        from transformers import TrainingArguments
        args = TrainingArguments(output_dir="out", per_device_train_batch_size=16)
        """,
    ]
    VALID = [
        """
        import torch
        model = Net().cuda()
        for x, y in train_loader:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = criterion(model(x.cuda()), y.cuda())
            loss.backward()
            optimizer.step()
        """,
        """
        from transformers import TrainingArguments
        args = TrainingArguments(output_dir="out", bf16=True)
        """,
    ]

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        self.float64_model = False
        self.trainer_calls: list[tuple[cst.Call, str, Optional[cst.CSTNode]]] = []

    def check_call(self, node: cst.Call) -> None:
        func = node.func
        if type(func) is cst.Attribute and func.attr.value == "double" and not node.args:
            receiver = func.value
            if is_model_callee(self.ctx, receiver) or (
                isinstance(receiver, cst.Call)
                and is_model_constructor(self.ctx.call_name(receiver), receiver.func, self.ctx.model_classes)
            ):
                self.float64_model = True  # a float64 model on purpose: not a bf16 candidate
            return
        qualified = self.ctx.call_name(node)
        if qualified == "torch.set_default_dtype" and node.args and is_float64_dtype(self.ctx, node.args[0].value):
            self.float64_model = True
            return
        if qualified in _HF_ARGUMENTS:
            keywords = {a.keyword.value: a.value for a in node.args if a.keyword is not None}
            if has_star_kwargs(node) or {"bf16", "fp16", "deepspeed"} & set(keywords):
                return
            if any(literal_value(keywords[k]) is not False for k in ("use_cpu", "no_cuda") if k in keywords):
                return
            self.trainer_calls.append((node, f"{qualified.rsplit('.', 1)[-1]} without bf16=/fp16= trains in float32; "
                                       "pass bf16=True (Ampere and newer) or fp16=True (V100/T4)", self.ctx.enclosing_statement()))
        elif qualified in _LIGHTNING_TRAINERS:
            keywords = {a.keyword.value: a.value for a in node.args if a.keyword is not None}
            if has_star_kwargs(node) or "precision" in keywords:
                return
            accelerator = literal_value(keywords["accelerator"]) if "accelerator" in keywords else "auto"
            if accelerator in ("cpu", "tpu"):
                return
            self.trainer_calls.append((node, "Lightning Trainer without precision= trains in float32 on the GPU; pass "
                                       "precision=\"bf16-mixed\" (Ampere and newer) or \"16-mixed\"", self.ctx.enclosing_statement()))

    def leave_Module(self, node: cst.Module) -> None:
        ctx = self.ctx
        if self.float64_model:
            return
        for call, message, statement in self.trainer_calls:
            self._report(call, message, statement)
        if not (uses_torch(ctx) and uses_cuda(ctx)) or _MIXED_PRECISION_TEXT.search(ctx.text):
            return
        if "Accelerator(" in ctx.text or "LightningCLI" in ctx.text:
            return  # precision comes from `accelerate config` / the command line
        training = TrainingLoops(ctx.loops, self.train_frames)
        for loop in ctx.loops.loops:
            if not isinstance(loop.node, (cst.For, cst.While)) or not training.is_training_step_loop(loop):
                continue
            code = ctx.module.code_for_node(loop.node)
            if not (".backward(" in code and ".step(" in code) and not (loop.calls & self.train_frames):
                continue  # an optimizer step, not a saliency map or an attack
            self._report(
                loop.node,
                "this CUDA training loop runs in float32 (no autocast/AMP anywhere in the module); wrap forward and "
                "loss in torch.autocast(\"cuda\", dtype=torch.bfloat16) (float16 + GradScaler on V100/T4)",
                loop.node,
            )
            return  # one finding per module

    def _report(self, node: cst.CSTNode, message: str, statement: Optional[cst.CSTNode]) -> None:
        self.report(
            node,
            message,
            SavingsEstimate(
                metric="time_factor",
                low=1.0,
                high=3.0,
                unit="x",
                basis="PyTorch tuning guide: mixed precision gives up to 3x on Volta and newer; Hugging Face: "
                "bert-large 57.8 s fp32 vs 27.5 s fp16 (2.1x)",
                hardware=self.ctx.hardware.key,
                assumptions=("a GPU with tensor cores; small models and batches gain little",),
            ),
            statement=statement,
        )


# -- GO508 ------------------------------------------------------------------------------------

_JAX_COMPILERS = frozenset({"jax.jit", "jax.pmap", "equinox.filter_jit", "flax.linen.jit"})
_TF_COMPILERS = frozenset({"tensorflow.function"})
_TORCH_COMPILERS = frozenset({"torch.compile"})
_TORCH_TRACERS = frozenset({"torch.jit.trace", "torch.jit.trace_module"})
_COMPILERS = _JAX_COMPILERS | _TF_COMPILERS | _TORCH_COMPILERS | _TORCH_TRACERS
_PARTIALS = frozenset({"functools.partial"})


class CompileInLoop(LoopBoundRule):
    """Creates a compiled (jit) wrapper inside a loop, so it compiles again.

    ## What it does
    Flags, inside a `for`/`while` loop or comprehension of the same function:
    `jax.jit`/`jax.pmap` of a lambda, a `functools.partial` or a function
    defined in the loop (also as a decorator); `tf.function(...)` of any
    function that does not change with the loop; `torch.jit.trace` of a
    loop-invariant function or module; `torch.compile` of a lambda, partial
    or function defined in the loop that captures a value changing with the
    loop, and `m = torch.compile(m)` re-wrapping its own result.

    ## Why is this bad
    Compilation costs seconds to minutes. JAX caches compiled code per
    function object: a new lambda or partial on each iteration misses the
    cache and traces and compiles again (JAX docs, "jit and caching"). Each
    `tf.function` object keeps its own trace cache, so creating one per
    iteration retraces every time (TensorFlow warns about "creating
    @tf.function repeatedly in a loop"). `torch.jit.trace` re-runs the trace
    on every call. `torch.compile` caches by code object, but a closure over a
    changing value fails its guards and recompiles (measured here: 1.3 s per
    iteration), and compiling a compiled module recompiles.

    Not flagged: `jax.jit(f)` or `torch.compile(f)` of the same named function
    or module in a loop (a cache hit: measured 1-2 ms against 6-27 s for the
    first compile with PyTorch 2.13), wrappers of a function or model that
    changes with the loop (a new model per trial must compile), wrappers
    under a once-guard (`if step_fn is None:`), and retry loops.

    ## Fix
    Create the compiled function once, before the loop, and pass the changing
    values as arguments (mark only truly static ones with `static_argnums`).

    ## Estimate
    Repeated work: (iterations - 1) extra compilations where the loop count is
    literal, otherwise 1-99; the probe times one compilation.
    """

    code = "GO508"
    name = "compile-in-loop"
    track_call_sites = False
    tokens = ("jit", "function", "compile", "pmap", "trace")
    INVALID = [
        """
        import jax
        for step in range(1000):
            loss_fn = jax.jit(lambda p: loss(p, batch))
            params = update(params, loss_fn)
        """,
        """
        import tensorflow as tf
        for epoch in range(20):
            step = tf.function(train_step)
            step(batch)
        """,
        """
        import torch
        for epoch in range(10):
            model = torch.compile(model)
            train(model)
        """,
    ]
    VALID = [
        """
        import jax
        step = jax.jit(train_step)
        for i in range(1000):
            params = step(params, batch)
        """,
        """
        import torch
        for name in ["resnet18", "resnet50"]:
            model = torch.compile(build(name))
            evaluate(model)
        """,
        """
        import jax
        for i in range(1000):
            params = jax.jit(train_step)(params, batch)
        """,
    ]

    def is_guard(self, node: cst.If, variant: set[str]) -> bool:
        return is_once_guard(node.test) or rare_guard(node.test, variant)

    def check_call(self, node: cst.Call) -> None:
        qualified = self.ctx.call_name(node)
        if qualified not in _COMPILERS:
            return
        if isinstance(self.ctx.parent(), cst.Decorator):
            return  # `@tf.function(jit_compile=True)`: handled with the def
        wrapped = get_arg(node, None, 0)
        for keyword in ("fun", "func", "fn", "model", "mod", "f"):
            if wrapped is None:
                wrapped = get_arg(node, keyword)
        if wrapped is None or not self.ctx.loops.loops_at():
            return
        parent = self.ctx.parent()
        rebinds = None
        if isinstance(parent, cst.Assign) and len(parent.targets) == 1 and isinstance(parent.targets[0].target, cst.Name):
            rebinds = parent.targets[0].target.value
        self.record(node, kind=qualified, wrapped=wrapped.value, rebinds=rebinds, assign=parent, fresh=self._fresh(wrapped.value))

    def _fresh(self, value: cst.BaseExpression) -> Optional[cst.CSTNode]:
        """A function object that is new on each iteration: a lambda, a partial,
        or a def inside the loop. Returns the node whose captured names matter."""
        if isinstance(value, cst.Lambda):
            return value
        if isinstance(value, cst.Call) and self.ctx.call_name(value) in _PARTIALS:
            return value
        if isinstance(value, cst.Name):
            bound = self.ctx.value_of(value)
            if isinstance(bound, cst.FunctionDef) and self._def_in_current_loop(bound):
                return bound
        return None

    def _def_in_current_loop(self, function: cst.FunctionDef) -> bool:
        loops = self.ctx.loops.loops_at()
        if not loops:
            return False
        stack: list[cst.CSTNode] = [loops[0].node]
        while stack:
            current = stack.pop()
            if current is function:
                return True
            stack.extend(current.children)
        return False

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        # Decorated defs inside a loop: (def, compiler, statement, ids of the loop nodes around it).
        self._decorated: list[tuple[cst.FunctionDef, str, Optional[cst.CSTNode], list[int]]] = []

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        # The loops analysis has already entered this def's frame, so the loops
        # around the def are read from the ancestors (innermost first).
        if not node.decorators:
            return
        loop_ids: list[int] = []
        for index in range(len(self.ctx.stack) - 2, -1, -1):
            ancestor = self.ctx.stack[index]
            if isinstance(ancestor, (cst.FunctionDef, cst.Lambda, cst.ClassDef)):
                break
            if isinstance(ancestor, cst.If) and self.ctx.stack[index + 1] is ancestor.body and is_once_guard(ancestor.test):
                return
            if isinstance(ancestor, (cst.For, cst.While)):
                loop_ids.append(id(ancestor))
        if not loop_ids:
            return
        for decorator in node.decorators:
            expr = decorator.decorator
            target = expr.func if isinstance(expr, cst.Call) else expr
            if isinstance(expr, cst.Call) and self.ctx.qualified_name(target) in _PARTIALS and expr.args:
                target = expr.args[0].value
            qualified = self.ctx.qualified_name(target)
            if qualified in _COMPILERS:
                self._decorated.append((node, qualified, self.ctx.enclosing_statement(), loop_ids))
                return

    def leave_Module(self, node: cst.Module) -> None:
        for candidate in self.candidates:
            loop = self._repeating_loop(candidate)
            if loop is None:
                continue
            kind = candidate.extra["kind"]
            wrapped = candidate.extra["wrapped"]
            fresh = candidate.extra["fresh"]
            rebinds = candidate.extra["rebinds"]
            variant = self._variant(loop, candidate.extra["assign"], rebinds)
            if fresh is not None:
                captured = referenced_names(fresh.body if isinstance(fresh, (cst.Lambda, cst.FunctionDef)) else fresh)
                if kind in _TORCH_COMPILERS and not (captured & variant):
                    continue  # same code object and guards: a cache hit
                reason = "a new function object on each iteration misses the compilation cache"
            else:
                names = referenced_names(wrapped)
                if rebinds is not None and rebinds in names and kind in _TORCH_COMPILERS | _TF_COMPILERS:
                    reason = "it wraps its own previous result, which compiles again"
                elif names & variant:
                    continue  # a different function or model each iteration
                elif kind in _TF_COMPILERS:
                    reason = "each tf.function object traces again"
                elif kind in _TORCH_TRACERS:
                    reason = "torch.jit.trace runs the trace again on every call"
                else:
                    continue  # jax.jit / torch.compile of the same function: a cache hit
            self._emit(candidate.node, kind, loop, reason, candidate.statement)
        by_node = {id(loop.node): loop for loop in self.ctx.loops.loops}
        for function, kind, statement, loop_ids in self._decorated:
            loops = [by_node[i] for i in loop_ids if i in by_node and not by_node[i].is_retry]
            if not loops:
                continue
            if kind in _TORCH_COMPILERS and not (referenced_names(function.body) & self._variant(loops[0], None, None)):
                continue
            self._emit(function, kind, loops[0], "a function defined in the loop is a new object each iteration", statement)

    def _repeating_loop(self, candidate: Candidate) -> Optional[LoopInfo]:
        for loop in candidate.direct:
            if id(loop) in candidate.guards.loops:
                return None
            if loop.is_retry:
                continue
            return loop
        return None

    @staticmethod
    def _variant(loop: LoopInfo, assign: Optional[cst.CSTNode], rebinds: Optional[str]) -> set[str]:
        variant = loop.variant_names()
        if rebinds is not None and rebinds not in loop.targets:
            # `m = torch.compile(m)`: this statement's own rebinding does not make
            # `m` a different model; any other assignment in the loop does.
            others = any(
                isinstance(node, (cst.Assign, cst.AugAssign, cst.AnnAssign)) and node is not assign
                and rebinds in referenced_names(node.targets[0].target if isinstance(node, cst.Assign) else node.target)
                for node in walk_expr(loop.node)
            )
            if not others:
                variant = variant - {rebinds}
        return variant

    def _emit(self, node: cst.CSTNode, kind: str, loop: LoopInfo, reason: str, statement) -> None:
        short = kind.replace("tensorflow.", "tf.")
        count = loop.count
        low, high = (float(max(count - 1, 0)),) * 2 if count else (1.0, 99.0)
        where = f"the {loop.describe()}" + (f" ({count} iterations)" if count else "")
        self.report(
            node,
            f"{short}(...) is created inside {where}: {reason}; create the compiled function once before the loop "
            "and pass changing values as arguments",
            SavingsEstimate(
                metric="repeated_work",
                low=low,
                high=high,
                unit="extra compilations",
                basis="JAX docs 'jit and caching', TensorFlow tf.function retracing guide; compile time x iterations",
                hardware=self.ctx.hardware.key,
                assumptions=("the loop count is literal" if count else "the loop count is not literal: 2-100 iterations assumed",),
            ),
            statement=statement,
        )


RULES = [
    HostSyncInStepLoop,
    CpuTensorThenMoved,
    EvalWithoutNoGrad,
    DataParallelInsteadOfDDP,
    EmptyCacheInLoop,
    GrowingConcatInLoop,
    NoMixedPrecision,
    CompileInLoop,
]
