"""GO502: a tensor created on the CPU and then copied to the GPU."""

from __future__ import annotations

from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import get_arg, has_star_kwargs, literal_value
from greenops_lint.analysis.efficiency import is_device_expr
from greenops_lint.analysis.rewrite import with_keyword
from greenops_lint.finding import Fix, SavingsEstimate
from greenops_lint.rule import Invalid, Rule

# ## Estimate: repeated work, one extra host allocation and host-to-device copy each time the line runs; the
# size is stated (at float32) when the shape is literal.
EXTRA_COPIES = 1.0
FLOAT32_BYTES = 4

# `torch.tensor(data)` is not here: with `device=` PyTorch still builds the
# tensor on the host and copies it (torch/csrc/utils/tensor_new.cpp), so there
# is nothing to save.
_LEGACY_CONSTRUCTORS = frozenset(
    {"Tensor", "FloatTensor", "LongTensor", "IntTensor", "BoolTensor", "HalfTensor", "ByteTensor"}
)
_RANDOM_FACTORIES = frozenset({"rand", "randn", "randint", "randperm"})
_FACTORIES = (
    frozenset({"zeros", "ones", "full", "empty", "arange", "linspace", "logspace", "eye"})
    | _RANDOM_FACTORIES
    | _LEGACY_CONSTRUCTORS
)
# Factories whose size the arguments give (`torch.full(size, value)`: the first only).
_SIZED_FACTORIES = ("zeros", "ones", "empty", "rand", "randn", "full")
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
        while (
            isinstance(inner, cst.Call)
            and isinstance(inner.func, cst.Attribute)
            and inner.func.attr.value in _PURE_METHODS
        ):
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
        if device is not None:
            literal = literal_value(device.value)
            if not (isinstance(literal, str) and literal.startswith("cpu")):
                return
        if factory in self.safe_fix_factories:
            fix = f"pass device= to torch.{factory}()"
        elif factory in _RANDOM_FACTORIES:
            fix = f"pass device= to torch.{factory}() (this changes the random stream: CUDA and CPU generators differ)"
        else:
            fix = "create it with torch.empty(..., device=...) (or zeros)"
        numel = self._literal_numel(inner, factory)
        size = f" ({numel * FLOAT32_BYTES:,} bytes at float32)" if numel else ""
        self.report(
            node,
            f"torch.{factory}(...) is built in host memory and then copied to the GPU{size}; {fix} "
            "to create it there directly",
            SavingsEstimate(
                metric="repeated_work",
                low=EXTRA_COPIES,
                high=EXTRA_COPIES,
                unit="extra host allocation and host-to-device copy per execution",
                basis="PyTorch tuning guide: create tensors directly on the target device; "
                "profiler ExtraCUDACopyPattern times torch.ones(n).to('cuda') against torch.ones(n, device='cuda')",
                hardware=self.ctx.hardware.key,
                assumptions=("the shape is literal" if numel else "the size is not literal; the probe times the copy",),
            ),
            fix=self._fix(node, inner) if factory in self.safe_fix_factories else None,
        )

    @staticmethod
    def _fix(move: cst.Call, factory: cst.Call) -> Optional[Fix]:
        """`torch.zeros(n).unsqueeze(0).to(dev)` -> `torch.zeros(n, device=dev).unsqueeze(0)`."""
        method = move.func.attr.value
        if method == "cuda" and not move.args:
            device: cst.BaseExpression = cst.SimpleString('"cuda"')
        elif method == "to" and len(move.args) == 1 and (
            move.args[0].keyword is None or move.args[0].keyword.value == "device"
        ):
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
        if factory not in _SIZED_FACTORIES:
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
