"""GO304: DataLoader workers or prefetching set far beyond what loading needs."""

from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import literal_value
from greenops_lint.analysis.parallelism import literal_int
from greenops_lint.finding import SavingsEstimate
from greenops_lint.rule import Invalid, Rule, RuleOption
from greenops_lint.rules.provisioning._shared import (
    GENERIC_WORKER_KEYWORDS,
    identifier,
    loader_like_call,
    worker_estimate,
)
from greenops_lint.savings import SOURCE_CPU, SOURCE_DERIVED

# Worker counts: the family's `worker_estimate` (constants in `_shared.py`).
# `prefetch_factor`: the buffer grows with the factor against PyTorch's default.
TORCH_PREFETCH_FACTOR = 2
# The thresholds (options) and the worker counts the messages suggest starting from.
MAX_WORKERS = 16
MAX_PREFETCH_FACTOR = 8
START_WORKERS_LOW, START_WORKERS_HIGH = 2, 8

_WORKER_COUNT_KEYWORDS = frozenset({"num_workers", "dataloader_num_workers"})
_PREFETCH_KEYWORDS = frozenset({"prefetch_factor", "dataloader_prefetch_factor"})
_BATCH_NAME = re.compile(r"(^|_)(batch_size|batchsize|bs)$|^batch$", re.IGNORECASE)
_START = f"{START_WORKERS_LOW}-{START_WORKERS_HIGH}"


class OversizedWorkerSettings(Rule):
    """Sets DataLoader workers or prefetching far beyond what loading needs.

    ## What it does
    Flags, in any call (a `DataLoader`, `functools.partial(DataLoader, ...)`,
    HF `TrainingArguments`, a Lightning `DataModule`):

    * `num_workers=` / `dataloader_num_workers=` set to an int literal above
      `max-workers` (default 16), directly or through a constant;
    * `prefetch_factor=` / `dataloader_prefetch_factor=` above
      `max-prefetch-factor` (default 8);
    * worker counts that scale with the batch size: `num_workers=batch_size`,
      `num_workers=batch_size * 2`, `num_workers=args.batch_size // 4`.

    Not flagged: counts at or below the thresholds, counts from config
    (unknown), `min(batch_size, 8)`, CPU-count expressions (GO301), and
    values passed through `dict(...)` or `**kwargs`.

    ## Why is this bad
    Every worker is a process with its own copy of the dataset object and its
    own `prefetch_factor` batches in host memory, and every DDP rank starts
    its own set. Past the CPUs and storage bandwidth the job has, more workers
    only add memory and contention ("throwing more worker processes at the
    IOPS barrier will not help, it'll make it worse", R. Wightman); a
    benchmark-embedding run with 104 workers froze (embeddings-benchmark/mteb
    #1331), and the RWKV trainer capped workers at 8 as "tested not to affect
    training performance". A worker builds whole batches, so its count should
    follow the CPUs, not the batch size: `num_workers=batch_size` with a batch
    of 256 starts 256 processes. A prefetch factor of 16 keeps 16 batches per
    worker in host memory (default 2) for no gain once the GPU is the
    bottleneck.

    ## Fix
    Start from 2-8 workers (at most the CPUs the job has), measure samples/s,
    and stop when it stops rising; keep `prefetch_factor` at its default of 2
    (raise it only when measured loading is bursty). Raise the thresholds for
    machines that are really that large. Size workers to what the job needs,
    not the machine's maximum and not the minimum: GO509 is the other side
    (no workers while loading is the bottleneck), and a loader is only ever
    flagged one way.

    ## Estimate
    Worker counts: 1.0-1.4x data-loading time, as GO301. `prefetch_factor`:
    prefetch_factor / 2 times the prefetch buffer memory of the default.
    """

    code = "GO304"
    name = "oversized-worker-settings"
    family = "provisioning"
    estimate_sources = {
        SOURCE_CPU: "worker counts: a loader pinned to 2 CPUs with 8 workers on this project's machine (data loading runs on CPUs)",
        SOURCE_DERIVED: "any hardware: `prefetch_factor` / 2 times the default prefetch buffer",
    }
    tokens = ("num_workers", "prefetch_factor")
    options = {
        "max-workers": RuleOption(
            MAX_WORKERS, int, "largest literal `num_workers` / `dataloader_num_workers` not reported"
        ),
        "max-prefetch-factor": RuleOption(MAX_PREFETCH_FACTOR, int, "largest literal `prefetch_factor` not reported"),
    }
    INVALID = [
        Invalid(
            """
            from torch.utils.data import DataLoader
            loader = DataLoader(train_ds, batch_size=32, shuffle=True, num_workers=64)
            """,
            line=2,
            message="num_workers=64 starts 64 worker processes per loader and per DDP rank",
        ),
        Invalid(
            """
            from torch.utils.data import DataLoader
            loader = DataLoader(train_ds, batch_size=32, num_workers=4, prefetch_factor=32)
            """,
            line=2,
            message="keeps 32 batches per worker in host memory (16x the default of 2)",
        ),
        Invalid(
            """
            from torch.utils.data import DataLoader
            batch_size = 128
            loader = DataLoader(train_ds, batch_size=batch_size, num_workers=batch_size)
            """,
            line=3,
            message="scales the worker count with the batch size (batch_size)",
        ),
    ]
    VALID = [
        """
        from torch.utils.data import DataLoader
        loader = DataLoader(train_ds, batch_size=32, shuffle=True, num_workers=8)
        """,
        """
        from torch.utils.data import DataLoader
        loader = DataLoader(train_ds, batch_size=32, num_workers=4, prefetch_factor=4)
        """,
        """
        from torch.utils.data import DataLoader
        loader = DataLoader(train_ds, batch_size=args.batch_size, num_workers=args.workers)
        """,
    ]

    def visit_Call(self, node: cst.Call) -> None:
        if self.ctx.call_name(node) == "builtins.dict":
            return  # `**dict(num_workers=...)`: not followed
        for arg in node.args:
            if arg.keyword is None:
                continue
            keyword = arg.keyword.value
            if keyword in GENERIC_WORKER_KEYWORDS and not loader_like_call(self.ctx, node):
                continue
            if keyword in _WORKER_COUNT_KEYWORDS:
                self._check_workers(arg, keyword)
            elif keyword in _PREFETCH_KEYWORDS:
                self._check_prefetch(arg, keyword)

    def _check_workers(self, arg: cst.Arg, keyword: str) -> None:
        scaled = self._scales_with_batch(arg.value, 0)
        if scaled is not None:
            self.report(
                arg,
                f"{keyword}={self.ctx.snippet(arg.value)} scales the worker count with the batch size ({scaled}), "
                f"one process (and dataset copy) per sample of a batch; size workers to the CPUs instead ({_START})",
                worker_estimate(self.ctx),
            )
            return
        value = literal_int(self.ctx, arg.value)
        limit = self.opts["max-workers"]
        if value is not None and value > limit:
            self.report(
                arg,
                f"{keyword}={value} starts {value} worker processes per loader and per DDP rank, each with its own "
                f"dataset copy; past the CPUs the job has they only add memory and contention; start from {_START} "
                f"and measure (max-workers={limit})",
                worker_estimate(self.ctx),
            )

    def _check_prefetch(self, arg: cst.Arg, keyword: str) -> None:
        value = literal_int(self.ctx, arg.value)
        limit = self.opts["max-prefetch-factor"]
        if value is None or value <= limit:
            return
        factor = value / TORCH_PREFETCH_FACTOR
        self.report(
            arg,
            f"{keyword}={value} keeps {value} batches per worker in host memory ({factor:g}x the default of "
            f"{TORCH_PREFETCH_FACTOR}) and loads no faster once the GPU is the bottleneck; keep the default "
            f"(max-prefetch-factor={limit})",
            SavingsEstimate(
                metric="memory_factor",
                low=factor,
                high=factor,
                unit="x prefetch buffer memory",
                basis=f"prefetch_factor={value} holds {value} batches per worker against the default "
                f"{TORCH_PREFETCH_FACTOR}",
                hardware=self.ctx.hardware.key,
                source=SOURCE_DERIVED,
                assumptions=("batch size and worker count unchanged",),
            ),
        )

    def _scales_with_batch(self, node: cst.BaseExpression, depth: int) -> Optional[str]:
        """The batch-size name a worker count grows with, if it does."""
        if depth > 5:
            return None
        ident = identifier(node)
        if ident is not None:
            if _BATCH_NAME.search(ident):
                return self.ctx.snippet(node)
            value = self.ctx.value_of(node)
            if isinstance(value, cst.BaseExpression):
                return self._scales_with_batch(value, depth + 1)
            return None
        if isinstance(node, cst.BinaryOperation):
            if isinstance(node.operator, (cst.Multiply, cst.Add)):
                return self._scales_with_batch(node.left, depth + 1) or self._scales_with_batch(node.right, depth + 1)
            if isinstance(node.operator, (cst.FloorDivide, cst.Divide)) and isinstance(
                literal_value(node.right), (int, float)
            ):
                return self._scales_with_batch(node.left, depth + 1)
            return None
        if isinstance(node, cst.Call):
            name = self.ctx.call_name(node)
            args = [a for a in node.args if a.keyword is None and not a.star]
            if name in ("builtins.int", "builtins.round") and args:
                return self._scales_with_batch(args[0].value, depth + 1)
            if name == "builtins.max":
                for arg in args:
                    found = self._scales_with_batch(arg.value, depth + 1)
                    if found:
                        return found
        return None
