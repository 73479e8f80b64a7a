"""GO502: a tensor created on the CPU and then copied to the GPU."""

from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import get_arg, has_star_kwargs, literal_value
from greenops_lint.analysis.candidates import Candidate, CandidateRule
from greenops_lint.analysis.efficiency import is_device_expr
from greenops_lint.analysis.guards import is_guard
from greenops_lint.analysis.loops import LoopInfo, Repetition
from greenops_lint.finding import SavingsEstimate
from greenops_lint.rule import Invalid
from greenops_lint.rules.efficiency._factories import device_fix, literal_numel, sizes_only
from greenops_lint.rules.efficiency._shared import is_few_items, is_setup_frame, is_small_fixed_loop, is_test_code
from greenops_lint.savings import SOURCE_COUNTED

# ## Estimate: repeated work, one extra host allocation and host-to-device copy each time the line runs; the
# size is stated (at float32) when the shape is literal.
EXTRA_COPIES = 1.0
FLOAT32_BYTES = 4
# ## When it is material: a copy that runs on every training step or forward pass (or every iteration of a loop
# that is not a small fixed collection), or one of at least this many bytes at float32 (literal shape).
MATERIAL_BYTES = 16 * 1024 * 1024

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
# A plain name tested against None is an argument's default (built on every call
# without it), unless the name says it is a cache.
_ONCE_NAME = re.compile(r"(first|once|cache|cached|loaded|init)", re.IGNORECASE)
_PURE_METHODS = frozenset(
    {
        "float",
        "long",
        "int",
        "half",
        "bfloat16",
        "double",
        "bool",
        "byte",
        "unsqueeze",
        "squeeze",
        "view",
        "reshape",
        "repeat",
        "expand",
        "t",
        "transpose",
        "permute",
        "flip",
        "contiguous",
        "flatten",
        "tril",
        "triu",
        "clone",
        "fill_",
        "zero_",
        "normal_",
        "uniform_",
        "exp",
        "log",
        "sqrt",
        "sin",
        "cos",
        "cumsum",
        "roll",
        "repeat_interleave",
        "pow",
        "mul",
        "add",
        "div",
        "neg",
        "abs",
        "type",
    }
)


class CpuTensorThenMoved(CandidateRule):
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

    ## When it is material
    A blocking copy from pageable host memory waits for the GPU stream to
    drain, so what matters is how often it runs, not its size. A finding is
    reported as a warning when the line runs on every training step or
    forward pass: inside a model's `forward()` (or Lightning/Keras step
    method), in a loop (a step, epoch or data loop, or any loop other than
    one over a small fixed collection: a literal list, `range(8)` or fewer,
    modules, dict items, channels, the batch dimension `range(x.shape[0])`,
    option values assigned to an attribute `for opt.weights in weights:`),
    or in a function the module calls from such a loop (two calls deep).
    It is also material when its literal shape is at least 16 MiB at
    float32. Everything else is reported at severity info (hidden unless
    `--show-info`): a tensor built once (module level; set-up code such as
    `__init__`, weight initialisation, loading, fusing or re-parameterising
    a model, even in a loop there), once per call of a function that no
    loop of the module repeats (a pipeline's `encode_prompt()`), under a
    lazy-initialisation
    guard (`if len(state) == 0:`, `if self.cache is None:`), and in tests,
    where the API is what is tested.
    """

    code = "GO502"
    name = "cpu-tensor-then-moved"
    family = "efficiency"
    estimate_sources = {
        SOURCE_COUNTED: "any GPU: one extra host allocation and copy per execution; `greenops-lint probe` times it",
    }
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

    def is_guard(self, node: cst.CSTNode, child: cst.CSTNode, variant: set[str]) -> bool:
        """Lazy initialisation (`if len(state) == 0:`, `if self.mask is None:`)
        and periodic tests run the copy rarely; `if mask is None:` on a plain
        argument is a default that is built on every call without one."""
        if not is_guard(node):
            return False
        if isinstance(node, cst.If):
            test = node.test
            if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
                return not isinstance(test.expression, cst.Name)
            if (
                isinstance(test, cst.Comparison)
                and isinstance(test.left, cst.Name)
                and len(test.comparisons) == 1
                and isinstance(test.comparisons[0].operator, (cst.Is, cst.IsNot))
                and literal_value(test.comparisons[0].comparator) is None
                and not _ONCE_NAME.search(test.left.value)
            ):
                return False
        return True

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
        if factory in _LEGACY_CONSTRUCTORS and not sizes_only(inner):
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
        self.record(node, factory=factory, fix=fix, inner=inner, numel=literal_numel(inner, factory))

    def _repeats(self, loop: LoopInfo) -> bool:
        """A loop that runs the copy again and again: not one over a small fixed
        collection, not a loop of set-up code (`__init__`) unless it trains."""
        if loop.framework:
            return True
        if is_small_fixed_loop(self.ctx, loop):
            return False
        if loop.kind == "loop" and is_few_items(self.ctx, loop.iterable):
            return False  # modules, dict items, the batch dimension: a few items per call
        if loop.kind == "loop" and _iterates_options(loop):
            return False  # `for opt.weights in weights:` reruns the whole script per value the user gave
        return loop.kind in ("step", "epoch") or not is_setup_frame(loop.frame)

    def _per_forward(self, candidate: Candidate) -> Optional[str]:
        """A `forward()` of a class that the module does not know as a model
        (its base is imported): it still runs for every batch."""
        frame = candidate.frame
        if (
            isinstance(frame, cst.FunctionDef)
            and frame.name.value == "forward"
            and not candidate.guards.frame
            and id(frame) in self.ctx.loops.frame_class
        ):
            return f"on every call of {self.ctx.loops.frame_class[id(frame)].name.value}.forward() (every batch)"
        return None

    def _once(self, candidate: Candidate) -> str:
        frame = candidate.frame
        if is_test_code(self.ctx.path):
            return "in test code, where the API is what is tested"
        if candidate.guards.frame or any(id(loop) in candidate.guards.loops for loop in candidate.direct):
            return "under a guard that builds it once (lazy initialisation)"
        if is_setup_frame(frame):
            return f"once, in set-up code ({frame.name.value}())"
        if isinstance(frame, cst.FunctionDef):
            return f"once per call of {frame.name.value}()"
        return "once"

    def leave_Module(self, node: cst.Module) -> None:
        for candidate in self.candidates:
            factory = candidate.extra["factory"]
            numel = candidate.extra["numel"]
            repetition: Optional[Repetition] = None
            where: Optional[str] = None
            if not is_test_code(self.ctx.path):
                repetition = self.repetition(candidate, self._repeats)
                if (
                    repetition is not None
                    and any(
                        is_setup_frame(frame) for frame in (candidate.frame, *(site.frame for site in repetition.via))
                    )
                    and repetition.loop.kind not in ("step", "epoch")
                ):
                    repetition = None  # set-up code (building, fusing, loading a model) runs once
                where = self.where(repetition) if repetition is not None else self._per_forward(candidate)
            nbytes = numel * FLOAT32_BYTES if numel is not None else None
            material = where is not None or (nbytes is not None and nbytes >= MATERIAL_BYTES)
            size = f" ({nbytes:,} bytes at float32)" if nbytes is not None else ""
            runs = where if where is not None else self._once(candidate)
            self.report(
                candidate.node,
                f"torch.{factory}(...) is built in host memory and then copied to the GPU{size} {runs}; "
                f"{candidate.extra['fix']} to create it there directly",
                SavingsEstimate(
                    metric="repeated_work",
                    low=EXTRA_COPIES,
                    high=EXTRA_COPIES,
                    unit="extra host allocation and host-to-device copy per execution",
                    basis="PyTorch tuning guide: create tensors directly on the target device; "
                    "profiler ExtraCUDACopyPattern times torch.ones(n).to('cuda') against torch.ones(n, device='cuda')",
                    hardware=self.ctx.hardware.key,
                    source=SOURCE_COUNTED,
                    assumptions=(
                        "the shape is literal" if numel else "the size is not literal; the probe times the copy",
                        f"runs {runs}" + ("" if material else ": below the materiality threshold"),
                    ),
                ),
                statement=candidate.statement,
                fix=device_fix(candidate.node, candidate.extra["inner"])
                if factory in self.safe_fix_factories
                else None,
                severity=None if material else "info",
            )

    def _moves_to_device(self, node: cst.Call) -> bool:
        target = get_arg(node, "device")
        if target is None:
            first = get_arg(node, None, 0)
            if first is None:
                return False
            target = first
        return is_device_expr(self.ctx, target.value)


def _iterates_options(loop: LoopInfo) -> bool:
    """`for opt.weights in weights:`: a loop that sets an option of the parsed
    arguments per value (yolov5's export and val run the script once per
    weights file or image size) iterates the handful of values the user gave."""
    node = loop.node
    return (
        isinstance(node, cst.For) and isinstance(node.target, cst.Attribute) and isinstance(node.target.value, cst.Name)
    )
