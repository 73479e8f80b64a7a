"""GO504: `torch.nn.DataParallel` instead of DistributedDataParallel."""

from __future__ import annotations

import re

import libcst as cst

from greenops_lint.analysis.loops import referenced_names
from greenops_lint.analysis.tree import is_test_file, walk_expr
from greenops_lint.finding import SavingsEstimate
from greenops_lint.rule import Invalid, Rule
from greenops_lint.savings import SOURCE_CITED

# ## Estimate: the time factor of training, from Hugging Face's measurement (200 GPT-2 steps on 2 NVLinked GPUs):
# DataParallel 110 s against DistributedDataParallel 101 s.
HF_STEPS = 200
HF_GPUS = 2
HF_DP_SECONDS = 110
HF_DDP_SECONDS = 101
TIME_FACTOR = round(HF_DP_SECONDS / HF_DDP_SECONDS, 2)

_DATA_PARALLEL = frozenset(
    {
        "torch.nn.DataParallel",
        "torch.nn.parallel.DataParallel",
        "torch.nn.parallel.data_parallel.DataParallel",
        "torch.nn.parallel.data_parallel",
    }
)
_DISTRIBUTED = frozenset(
    {
        "torch.nn.parallel.DistributedDataParallel",
        "torch.nn.parallel.distributed.DistributedDataParallel",
        "torch.nn.DistributedDataParallel",
    }
)
# An option that names DataParallel: `if args.dp:`, `self.data_parallel_backend`, `use_data_parallel`.
_DP_OPTION = re.compile(r"(^|_)(dp|data_?parallel)(_|$)", re.IGNORECASE)
# What a test reads to tell whether a launcher started one process per GPU: `RANK == -1`, `args.local_rank`,
# `world_size > 1`, `dist.is_initialized()`.
_LAUNCH_STATE = re.compile(r"^(rank|local_rank|global_rank|world_size|is_initialized|distributed)$", re.IGNORECASE)
# A helper of the module's project that wraps in DistributedDataParallel: yolov5's `smart_DDP(model)`.
_DDP_HELPER = re.compile(r"(^|_)ddp(_|$)", re.IGNORECASE)


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

    Not flagged: `DistributedDataParallel`; `isinstance(m, nn.DataParallel)`
    checks (handling models that others wrapped); DataParallel that the user
    chose by name (under `if args.dp:` or a `data_parallel_backend` option)
    or as a framework's opt-in strategy class (Lightning's "dp"
    `DataParallelStrategy`); DataParallel as the fallback of a function that
    also wraps in DistributedDataParallel, directly or through a helper
    named for it (HF `Trainer`, ignite's `auto_model`, SpeechBrain,
    yolov5's `smart_DDP`), or under a test of the launch (`if RANK == -1:`,
    `if args.local_rank == -1:`, `if not dist.is_initialized():`): DDP when
    launched with `torchrun`, DP when not, so the fix is how you launch, not
    the code; and test files.

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
    estimate_sources = {
        SOURCE_CITED: "GPT-2 on 2 NVLinked GPUs (Hugging Face, 'Efficient training on multiple GPUs')",
    }
    tokens = ("DataParallel", "data_parallel")
    INVALID = [
        Invalid(
            """
            import torch.nn as nn
            model = nn.DataParallel(model)
            """,
            line=2,
            message="DataParallel drives every GPU from one process",
        ),
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
        """
        import torch
        def wrap(model, world_size):
            if world_size > 1:
                return torch.nn.parallel.DistributedDataParallel(model)
            return torch.nn.DataParallel(model)
        """,
    ]

    def visit_Call(self, node: cst.Call) -> None:
        if self.ctx.call_name(node) not in _DATA_PARALLEL or is_test_file(self.ctx.path):
            return
        if self._chosen_by_user() or self._offers_ddp() or self._launch_fallback():
            return
        self.report(
            node,
            "DataParallel drives every GPU from one process: each step it re-copies the model from GPU 0, scatters "
            "the batch and gathers outputs and gradients there; use DistributedDataParallel (torchrun, one process "
            "per GPU)",
            SavingsEstimate(
                metric="time_factor",
                low=TIME_FACTOR,
                high=TIME_FACTOR,
                unit="x",
                basis=f"Hugging Face 'Efficient training on multiple GPUs': {HF_STEPS} GPT-2 steps on {HF_GPUS} "
                f"NVLinked GPUs, DP {HF_DP_SECONDS} s vs DDP {HF_DDP_SECONDS} s",
                hardware=self.ctx.hardware.key,
                source=SOURCE_CITED,
                assumptions=(f"{HF_GPUS} GPUs with NVLink; the gap grows with the GPU count (not quantified)",),
            ),
        )

    def _chosen_by_user(self) -> bool:
        """Under an `if` that tests an option naming DataParallel, or in a
        strategy class the user selects by name."""
        stack = self.ctx.stack
        for index in range(len(stack) - 2, -1, -1):
            node = stack[index]
            if type(node) is cst.If and stack[index + 1] is node.body:
                if any(_DP_OPTION.search(name) for name in _attribute_names(node.test)):
                    return True
            elif type(node) is cst.ClassDef:
                bases = " ".join(self.ctx.module.code_for_node(b.value) for b in node.bases)
                return "Strategy" in bases
        return False

    def _offers_ddp(self) -> bool:
        """The function also wraps in DistributedDataParallel: DataParallel is
        its fallback when nothing launched one process per GPU."""
        function = self.ctx.enclosing_function()
        if function is None:
            return False
        return any(type(node) is cst.Call and self._wraps_in_ddp(node) for node in walk_expr(function.body))

    def _wraps_in_ddp(self, call: cst.Call) -> bool:
        if self.ctx.call_name(call) in _DISTRIBUTED:
            return True
        func = call.func
        name = func.value if type(func) is cst.Name else func.attr.value if type(func) is cst.Attribute else ""
        return bool(_DDP_HELPER.search(name))

    def _launch_fallback(self) -> bool:
        """Under an `if` (either branch) that tests whether a launcher started one
        process per GPU (`RANK == -1`): the other branch is the distributed one."""
        stack = self.ctx.stack
        for index in range(len(stack) - 2, -1, -1):
            node = stack[index]
            if type(node) is cst.If and stack[index + 1] in (node.body, node.orelse):
                if any(_LAUNCH_STATE.match(name) for name in _attribute_names(node.test)):
                    return True
            elif type(node) in (cst.FunctionDef, cst.ClassDef):
                return False
        return False


def _attribute_names(test: cst.BaseExpression) -> set[str]:
    """The names and attribute names a test reads (`args.dp` -> {"args", "dp"})."""
    names = set(referenced_names(test))
    names.update(node.attr.value for node in walk_expr(test) if type(node) is cst.Attribute)
    return names
