"""GO510: a DataLoader feeding CUDA training from pageable host memory (no `pin_memory=True`)."""

from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import get_arg
from greenops_lint.analysis.functions import called_function
from greenops_lint.analysis.loops import bound_names
from greenops_lint.analysis.rewrite import with_keyword
from greenops_lint.analysis.tree import walk_expr
from greenops_lint.finding import Fix, SavingsEstimate
from greenops_lint.rule import Invalid, Rule
from greenops_lint.rules.efficiency._dataloaders import (
    COLLATE_FN_POSITION,
    PIN_MEMORY_POSITION,
    dataset_class,
    device_transfer,
    has_star_args,
    is_dataloader,
    keyword_value,
    moves_to_device,
    serves_evaluation,
    trains_on_cuda,
)
from greenops_lint.savings import SOURCE_CITED

# ## Estimate: creedengo-python GCI102 (Quadro RTX 6000, CodeCarbon): pin_memory=True cut the batch
# time from 0.0472 s to 0.0378 s and the training time by 9.82%; PyTorch's data-loading tutorial
# measured about 1.0x on top of 4 workers where CPU transforms dominate.
GCI102_BATCH_BEFORE_S = 0.0472
GCI102_BATCH_AFTER_S = 0.0378
GCI102_TRAINING_SAVED = 0.0982
TIME_FACTOR_LOW = 1.0
TIME_FACTOR_HIGH = round(1 / (1 - GCI102_TRAINING_SAVED), 2)  # 1.11x
# Tensors created on the GPU by default: a loader's tensors may already be CUDA tensors (pinning raises).
_ITERATION_WRAPPERS = frozenset({"builtins.enumerate", "tqdm.tqdm", "tqdm.auto.tqdm", "tqdm.notebook.tqdm"})
_CUDA_DEFAULT = re.compile(r"set_default_device\(|set_default_tensor_type\([^)]*cuda")


class NoPinMemory(Rule):
    """Feeds CUDA training from pageable host memory: every batch is staged before its copy.

    ## What it does
    Flags a `DataLoader` without `pin_memory=True` (absent, or `False`) in a
    module that trains on a CUDA GPU, when a loop of the module iterates it
    and copies its batch to the GPU (`x.to(device)`, `batch["x"].cuda()`,
    `{k: v.to(device) for k, v in batch.items()}`).

    Not flagged: `pin_memory=` set to anything but `False` (a flag such as
    `pin_memory=args.pin_memory` or `torch.cuda.is_available()` is the
    author's choice), a loader whose settings come through `**kwargs`, a
    `collate_fn=` of the module that pins its batch itself, a dataset that already returns CUDA
    tensors (pinning them raises; GO514 reports that dataset), a module
    that creates tensors on the GPU by default (`torch.set_default_device`,
    `set_default_tensor_type("torch.cuda...")`), validation,
    test and prediction loaders, CPU-only scripts, inference scripts (no
    backward pass), loaders whose batches the module never copies to the GPU
    itself (returned to other code, or handed to a framework), and test
    files.

    ## Why is this bad
    CUDA copies from pageable memory go through a pinned staging buffer the
    driver fills synchronously, so each `batch.to("cuda")` costs an extra
    host copy and blocks the Python thread. With `pin_memory=True` the
    loader's pin thread puts each batch in page-locked memory in the
    background, the GPU's DMA engine reads it directly, and
    `.to(device, non_blocking=True)` can overlap the copy with compute (GO511).
    creedengo-python's GCI102 measured on a Quadro RTX 6000 a batch time of
    0.0472 s -> 0.0378 s and 9.8% less training time (7.6% less CO2e).

    ## Example
    ```python
    train_loader = DataLoader(train_ds, batch_size=64, shuffle=True, num_workers=4)
    ```

    ## Fix
    Pass `pin_memory=True` (autofix, safe: the batches hold the same values,
    in page-locked host memory; with a custom batch type the loader leaves
    it as it is). Then move batches with `.to(device, non_blocking=True)`.
    Pinned memory is taken from the host's RAM: on a host short of memory
    keep `prefetch_factor` small.

    Off by default: on the 28-wheel triage corpus 8 of 17 findings were
    true before the rule required the module to copy the batch itself. The
    others were loaders whose batches are small against the step (token ids
    for an LLM, triple indices, a text file moved once and then trained on
    for hundreds of steps) or device-agnostic helpers used on the CPU; what
    a batch weighs against the step is not visible in the code. With the
    requirement, 2 findings remain (1 true, 1 debatable): too few to show
    0.9.
    Turn it on with `extend-select = ["GO510"]` for scripts that move image,
    audio or feature batches to the GPU.

    ## Estimate
    Time factor of training: 1.0x to 1.11x, cited from creedengo GCI102
    (Quadro RTX 6000: 9.82% less training time). It depends on the GPU and
    the host link: the saving is the host-side staging copy of every batch,
    so it grows with the batch's bytes against the step time (larger inputs,
    a faster GPU) and vanishes where loading or CPU transforms dominate
    (PyTorch's data-loading tutorial: about 1.0x on top of 4 workers).
    """

    code = "GO510"
    name = "no-pin-memory"
    family = "efficiency"
    estimate_sources = {
        SOURCE_CITED: "a Quadro RTX 6000 (creedengo GCI102)",
    }
    default_enabled = False
    fixable = True
    fix_safety = "safe"
    tokens = ("DataLoader",)
    analyses = ("dataset_classes",)
    INVALID = [
        Invalid(
            """
            import torch
            from torch.utils.data import DataLoader
            train_loader = DataLoader(train_ds, batch_size=64, shuffle=True, num_workers=4)
            model = Net().cuda()
            for x, y in train_loader:
                criterion(model(x.cuda()), y.cuda()).backward()
            """,
            line=3,
            message="without pin_memory=True",
            fixed="""
            import torch
            from torch.utils.data import DataLoader
            train_loader = DataLoader(train_ds, batch_size=64, shuffle=True, num_workers=4, pin_memory=True)
            model = Net().cuda()
            for x, y in train_loader:
                criterion(model(x.cuda()), y.cuda()).backward()
            """,
        ),
        Invalid(
            """
            import torch as T
            from torch.utils.data import DataLoader as DL
            loader = DL(dataset, batch_size=32, pin_memory=False)
            device = T.device("cuda")
            for x in loader:
                model(x.to(device)).mean().backward()
            """,
            line=3,
            message="pin_memory=False",
            fixed="""
            import torch as T
            from torch.utils.data import DataLoader as DL
            loader = DL(dataset, batch_size=32, pin_memory=True)
            device = T.device("cuda")
            for x in loader:
                model(x.to(device)).mean().backward()
            """,
        ),
    ]
    VALID = [
        # Pinned already, or the author's flag.
        """
        import torch
        from torch.utils.data import DataLoader
        a = DataLoader(train_ds, batch_size=64, pin_memory=True)
        b = DataLoader(train_ds, batch_size=64, pin_memory=torch.cuda.is_available())
        model(x.cuda()).sum().backward()
        """,
        # pin_memory set through **kwargs.
        """
        import torch
        from torch.utils.data import DataLoader
        kwargs = {"num_workers": 4, "pin_memory": True} if use_cuda else {}
        loader = DataLoader(train_ds, batch_size=64, **kwargs)
        model(x.cuda()).sum().backward()
        """,
        # A collate_fn that pins its batch.
        """
        import torch
        from torch.utils.data import DataLoader
        def collate(samples):
            return torch.stack(samples).pin_memory()
        loader = DataLoader(train_ds, batch_size=64, collate_fn=collate)
        model(x.cuda()).sum().backward()
        """,
        # CPU-only training.
        """
        import torch
        from torch.utils.data import DataLoader
        loader = DataLoader(train_ds, batch_size=64)
        for x, y in loader:
            model(x).sum().backward()
        """,
        # Inference script.
        """
        import torch
        from torch.utils.data import DataLoader
        loader = DataLoader(images, batch_size=64)
        with torch.no_grad():
            for x in loader:
                outputs.append(model(x.cuda()))
        """,
        # A test loader in a training script.
        """
        import torch
        from torch.utils.data import DataLoader
        test_loader = DataLoader(test_ds, batch_size=256)
        model(x.cuda()).sum().backward()
        """,
        # Tensors are created on the GPU by default: pinning them would raise.
        """
        import torch as T
        from torch.utils.data import DataLoader, TensorDataset
        T.set_default_tensor_type("torch.cuda.DoubleTensor")
        loader = DataLoader(TensorDataset(T.rand(100, 2), T.rand(100, 1)), batch_size=256, shuffle=True)
        for x, y in loader:
            model(x).sum().backward()
        """,
        # The dataset returns CUDA tensors: pinning them would raise.
        """
        import torch
        from torch.utils.data import DataLoader, TensorDataset
        loader = DataLoader(TensorDataset(X.cuda(), y.cuda()), batch_size=64)
        for x, y in loader:
            model(x).sum().backward()
        """,
    ]

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        self._cuda_default: Optional[bool] = None
        self.pending: list[tuple[cst.Call, str, Optional[cst.CSTNode]]] = []
        self.moved: set[int] = set()  # id() of loaders whose batches a loop copies to the GPU

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        if not is_dataloader(ctx, node) or has_star_args(node) or not trains_on_cuda(ctx):
            return
        pin = get_arg(node, "pin_memory", PIN_MEMORY_POSITION)
        if pin is not None and keyword_value(ctx, node, "pin_memory", PIN_MEMORY_POSITION) is not False:
            return
        if self._cuda_default is None:
            self._cuda_default = bool(_CUDA_DEFAULT.search(ctx.text))
        if self._cuda_default or serves_evaluation(ctx, node) or self._collate_pins(node):
            return
        dataset = get_arg(node, "dataset", 0)
        if dataset is not None and self._cuda_dataset(dataset.value):
            return
        setting = "with pin_memory=False" if pin is not None else "without pin_memory=True"
        self.pending.append((node, setting, ctx.enclosing_statement()))

    def visit_For(self, node: cst.For) -> None:
        """A loop over a loader of the module whose body copies the batch to the GPU."""
        iterable = node.iter
        while isinstance(iterable, cst.Call) and iterable.args and self.ctx.call_name(iterable) in _ITERATION_WRAPPERS:
            iterable = iterable.args[0].value
        loader = self.ctx.value_of(iterable) if isinstance(iterable, (cst.Name, cst.Attribute)) else iterable
        if not isinstance(loader, cst.Call) or not is_dataloader(self.ctx, loader):
            return
        names = bound_names(node.target)
        for current in walk_expr(node.body):
            if isinstance(current, cst.Assign) and _rooted(current.value, names):
                for target in current.targets:
                    names |= bound_names(target.target)
            elif isinstance(current, cst.CompFor) and _rooted(current.iter, names):
                names |= bound_names(current.target)
        for current in walk_expr(node.body):
            if device_transfer(self.ctx, current) and _rooted(current.func.value, names):  # type: ignore[attr-defined]
                self.moved.add(id(loader))
                return

    def leave_Module(self, original_node: cst.Module) -> None:
        for node, setting, statement in self.pending:
            if id(node) in self.moved:
                self._report(node, setting, statement)

    def _report(self, node: cst.Call, setting: str, statement) -> None:
        ctx = self.ctx
        self.report(
            node,
            f"this DataLoader feeds CUDA training {setting}: every batch is copied to a staging buffer before "
            "it goes to the GPU, blocking the training thread; pass pin_memory=True (and move batches with "
            "non_blocking=True)",
            SavingsEstimate(
                metric="time_factor",
                low=TIME_FACTOR_LOW,
                high=TIME_FACTOR_HIGH,
                unit="x training time",
                basis=f"creedengo GCI102 (Quadro RTX 6000): pin_memory=True cut the batch time from "
                f"{GCI102_BATCH_BEFORE_S} s to {GCI102_BATCH_AFTER_S} s and training time by "
                f"{GCI102_TRAINING_SAVED:.2%}",
                hardware=ctx.hardware.key,
                assumptions=(
                    "the saving is the staging copy of each batch: it grows with the batch's bytes against the GPU "
                    "step time and vanishes where loading or CPU transforms dominate",
                ),
                source=SOURCE_CITED,
            ),
            statement=statement,
            fix=Fix(
                node,
                lambda updated: with_keyword(updated, "pin_memory", cst.Name("True")),
                safe=True,
                title="pin_memory=True",
            ),
        )

    def _collate_pins(self, node: cst.Call) -> bool:
        collate = get_arg(node, "collate_fn", COLLATE_FN_POSITION)
        if collate is None:
            return False
        value = collate.value
        if isinstance(value, cst.Name):
            function = called_function(self.ctx, cst.Call(func=value))
            if function is not None:
                return "pin_memory" in self.ctx.module.code_for_node(function)
        return "pin" in self.ctx.snippet(value, 200).lower()

    def _cuda_dataset(self, expr: cst.BaseExpression) -> bool:
        """A dataset that already holds or returns CUDA tensors."""
        ctx = self.ctx
        cls = dataset_class(ctx, expr)
        if cls is not None:
            return moves_to_device(ctx, cls)
        root = ctx.value_of(expr) if isinstance(expr, cst.Name) else expr
        if isinstance(root, cst.Call):
            for arg in root.args:
                value = arg.value
                bound = ctx.value_of(value) if isinstance(value, cst.Name) else value
                for candidate in (value, bound):
                    if isinstance(candidate, cst.Call) and (
                        device_transfer(ctx, candidate) or get_arg(candidate, "device") is not None
                    ):
                        return True
        return False


def _rooted(expr: cst.BaseExpression, names: set[str]) -> bool:
    """`batch`, `batch["x"]`, `batch.items()`, `(x, y)` for names that hold the batch."""
    if isinstance(expr, cst.Tuple):
        return bool(expr.elements) and all(_rooted(e.value, names) for e in expr.elements)
    while True:
        if isinstance(expr, (cst.Subscript, cst.Attribute)):
            expr = expr.value
        elif (
            isinstance(expr, cst.Call)
            and isinstance(expr.func, cst.Attribute)
            and expr.func.attr.value in ("items", "values")
        ):
            expr = expr.func.value
        else:
            return isinstance(expr, cst.Name) and expr.value in names
