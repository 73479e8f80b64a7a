"""GO514: a Dataset that moves each sample to the GPU in `__getitem__`."""

from __future__ import annotations

from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import get_arg
from greenops_lint.analysis.efficiency import is_device_expr, uses_cuda, uses_torch
from greenops_lint.analysis.names import dotted_name
from greenops_lint.analysis.tree import is_test_file, walk_expr
from greenops_lint.finding import SavingsEstimate
from greenops_lint.rule import Invalid, Rule
from greenops_lint.rules.efficiency._dataloaders import (
    SAMPLE_METHODS,
    device_transfer,
    workers_estimate,
)
from greenops_lint.savings import SOURCE_CITED, SOURCE_DERIVED

_DATASET_NAME_ENDINGS = ("Dataset", "DataSet", "Data")
# torch factories that take `device=`: a tensor created on the GPU per sample.
_FACTORIES = frozenset(
    {"torch.tensor", "torch.as_tensor", "torch.from_numpy", "torch.zeros", "torch.ones", "torch.empty"}
)
# Calls that only turn an indexed item into a tensor or array.
_CONVERSIONS = _FACTORIES | {"numpy.asarray", "numpy.array"}
# Tensor methods that only convert or reshape what was indexed: no per-sample work for a worker to take.
_CHEAP_METHODS = frozenset(
    {
        "to", "cuda", "cpu", "float", "double", "half", "long", "int", "bool", "type", "clone", "detach",
        "contiguous", "view", "reshape", "unsqueeze", "squeeze", "permute", "numpy", "item", "astype",
    }
)  # fmt: skip


class DeviceTransferInDataset(Rule):
    """Moves every sample to the GPU inside `Dataset.__getitem__`.

    ## What it does
    Flags `.cuda()`, `.to("cuda")`, `.to(self.device)` and
    `torch.tensor(..., device="cuda")` inside the `__getitem__` (or
    `__getitems__`) of a Dataset class of the module (a subclass of
    `torch.utils.data.Dataset`, or a class named `...Dataset`), in a module
    that uses CUDA. One finding per statement.

    Not flagged: copies to the CPU or to a dtype, other methods of the
    dataset (`__init__` moving the whole dataset to the GPU once is a valid
    choice for small data), CPU-only modules, test files.

    ## Why is this bad
    A dataset that returns CUDA tensors cannot be loaded by worker
    processes (CUDA cannot be re-initialised in a forked worker), so the
    loader must run with `num_workers=0`: reading and transforming happen
    in the training process while the GPU waits (GO509's cost). Each sample
    is also its own small host-to-device copy, one per sample instead of one
    per batch, and the collated batch is assembled on the GPU. The
    `torch.utils.data` docs advise against returning CUDA tensors from
    multi-process loading and recommend `pin_memory=True` instead.

    ## Example
    ```python
    class Frames(Dataset):
        def __getitem__(self, i):
            return self.transform(read_image(self.paths[i])).to("cuda")
    ```

    ## Fix
    Return CPU tensors from `__getitem__`; build the loader with
    `num_workers=2-4` and `pin_memory=True`, and move each batch in the
    training loop with `batch.to(device, non_blocking=True)`.

    ## Estimate
    Time factor of training: 1.0x to 2.7x, as GO509, when `__getitem__`
    reads a file or transforms the sample (or calls code the module does
    not show): the dataset forces `num_workers=0`, and PyTorch's
    data-loading tutorial ran an epoch with a 5 ms per-sample transform
    about 2.7x faster with 4 workers. When `__getitem__` only indexes data
    held in memory and moves it (`torch.tensor(self.xs[i], device=...)`),
    workers would have nothing to parallelise: 1x (derived), reported at
    severity info. Either way each sample is its own small host-to-device
    copy instead of one per batch (not quantified here).
    """

    code = "GO514"
    name = "device-transfer-in-dataset"
    family = "efficiency"
    estimate_sources = {
        SOURCE_CITED: "PyTorch's data-loading tutorial (CPU loading, 4 workers, 5 ms per sample); the GPU share is "
        "not measured; only where __getitem__ reads or transforms",
        SOURCE_DERIVED: "any hardware: a __getitem__ that only indexes in-memory data gives workers nothing to run",
    }
    tokens = ("__getitem__", "__getitems__")
    analyses = ("dataset_classes",)
    INVALID = [
        Invalid(
            """
            import torch
            from torch.utils.data import Dataset

            class Frames(Dataset):
                def __init__(self, paths):
                    self.paths = paths
                def __getitem__(self, i):
                    image = load(self.paths[i])
                    return image.cuda(), self.labels[i]
            """,
            line=9,
            message="moves each sample to the GPU inside Frames.__getitem__",
        ),
        Invalid(
            """
            import torch as T
            import torch.utils.data as tud

            class PairDataset(tud.Dataset):
                def __init__(self, xs, device="cuda"):
                    self.xs, self.device = xs, device
                def __getitem__(self, i):
                    return T.tensor(self.xs[i], device=self.device)
            """,
            line=8,
        ),
    ]
    VALID = [
        # CPU tensors from __getitem__; the whole (small) dataset moved once in __init__.
        """
        import torch
        from torch.utils.data import Dataset

        class Cached(Dataset):
            def __init__(self, x):
                self.x = x.cuda()
            def __getitem__(self, i):
                return self.x[i].to(torch.float16), self.y[i].to("cpu")
        """,
        # Not a dataset.
        """
        import torch

        class Buffer:
            def __getitem__(self, i):
                return self.items[i].cuda()
        """,
        # CPU-only module.
        """
        import torch
        from torch.utils.data import Dataset

        class Points(Dataset):
            def __getitem__(self, i):
                return self.x[i].to(self.device)
        """,
    ]

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        self._active: Optional[bool] = None
        self._reported: set[int] = set()

    def _applies(self) -> bool:
        if self._active is None:
            ctx = self.ctx
            self._active = uses_torch(ctx) and uses_cuda(ctx) and not is_test_file(ctx.path)
        return self._active

    def visit_Call(self, node: cst.Call) -> None:
        if not self._transfer(node) or not self._applies():
            return
        method = self.ctx.enclosing_function()
        if method is None or method.name.value not in SAMPLE_METHODS:
            return
        cls = self.ctx.enclosing_class()
        if cls is None or not self._is_dataset(cls) or self.ctx.enclosing(cst.FunctionDef) is not method:
            return
        statement = self.ctx.enclosing_statement()
        if statement is not None and id(statement) in self._reported:
            return
        if statement is not None:
            self._reported.add(id(statement))
        index_only = self._only_indexes(method)
        self.report(
            node,
            f"{self.ctx.snippet(node)} moves each sample to the GPU inside {cls.name.value}.{method.name.value}: "
            "the loader cannot use worker processes (CUDA in forked workers fails) and copies sample by sample; "
            "return CPU tensors and move whole batches (pin_memory=True, non_blocking=True)",
            self._index_only_estimate() if index_only else workers_estimate(self.ctx),
            statement=statement,
            severity="info" if index_only else None,
        )

    def _only_indexes(self, method: cst.FunctionDef) -> bool:
        """`__getitem__` only indexes data in memory and converts or moves it: no file read, no
        transform, no call to code the module does not show."""
        for node in walk_expr(method.body):
            if type(node) is not cst.Call or self._transfer(node):
                continue
            qualified = self.ctx.call_name(node)
            if qualified is not None and (qualified in _CONVERSIONS or qualified.startswith("builtins.")):
                continue
            if qualified is None and isinstance(node.func, cst.Attribute) and node.func.attr.value in _CHEAP_METHODS:
                continue
            return False
        return True

    def _index_only_estimate(self) -> SavingsEstimate:
        return SavingsEstimate(
            metric="time_factor",
            low=1.0,
            high=1.0,
            unit="x training time",
            basis="__getitem__ only indexes data held in memory and moves it: worker processes would have no "
            "per-sample work to run in parallel; the per-sample copies (one per sample, not per batch) remain",
            hardware=self.ctx.hardware.key,
            assumptions=("the indexed data is already in memory",),
            source=SOURCE_DERIVED,
        )

    def _transfer(self, node: cst.Call) -> bool:
        if device_transfer(self.ctx, node):
            return True
        if isinstance(node.func, (cst.Name, cst.Attribute)) and self.ctx.call_name(node) in _FACTORIES:
            device = get_arg(node, "device")
            return device is not None and is_device_expr(self.ctx, device.value)
        return False

    def _is_dataset(self, cls: cst.ClassDef) -> bool:
        if self.ctx.dataset_classes.is_model_class(cls.name.value) or cls.name.value.endswith(_DATASET_NAME_ENDINGS):
            return True
        return any((dotted_name(base.value) or "").endswith("Dataset") for base in cls.bases)
