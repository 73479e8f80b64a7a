"""GO511: batches from a pinned DataLoader copied to the GPU without `non_blocking=True`."""

from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import NOT_LITERAL, get_arg, literal_value
from greenops_lint.analysis.efficiency import grad_mode
from greenops_lint.analysis.loops import bound_names
from greenops_lint.analysis.rewrite import with_keyword
from greenops_lint.finding import Fix, SavingsEstimate
from greenops_lint.rule import Invalid, Rule
from greenops_lint.rules.efficiency._dataloaders import (
    PIN_MEMORY_POSITION,
    device_transfer,
    is_dataloader,
    trains_on_cuda,
)
from greenops_lint.savings import SOURCE_DERIVED

# ## Estimate: at most the copy's share of the step, which an asynchronous copy overlaps with the
# kernels queued after it. No published measurement isolates non_blocking=True (creedengo GCI102
# compares pin_memory False/True, GO510's change): the 1.1x ceiling is an assumed copy share of 10%.
ASSUMED_COPY_SHARE = 0.10
TIME_FACTOR_LOW = 1.0
TIME_FACTOR_HIGH = 1 + ASSUMED_COPY_SHARE
# Wrappers through which `for x in wrapper(loader)` still iterates the loader.
_ITERATION_WRAPPERS = frozenset({"builtins.enumerate", "tqdm.tqdm", "tqdm.auto.tqdm", "tqdm.notebook.tqdm"})
# Tensor.to(device, dtype, non_blocking, copy); Tensor.cuda(device, non_blocking)
_NON_BLOCKING_POSITION = {"to": 2, "cuda": 1}
# Functions that evaluate: their loops run once per evaluation, not per training step (as GO501 reads them).
_EVALUATION_FRAME = re.compile(r"^_?(eval|evaluate|evaluation|validate|validation|test|predict|inference)(_\w*)?$")


class BlockingHostToDevice(Rule):
    """Copies batches from a pinned DataLoader to the GPU synchronously.

    ## What it does
    Flags `.to(device)` and `.cuda()` on a batch (the loop variable, or a
    part of it: `batch["x"]`, `x, y = batch`, `{k: v.to(device) for k, v
    in batch.items()}`) inside a loop over a `DataLoader` of the module
    built with `pin_memory=True` (or a `pin_memory=` that mentions CUDA,
    `torch.cuda.is_available()`), when the copy has no `non_blocking=True`,
    in a module that trains on a CUDA GPU.

    Not flagged: copies that already pass `non_blocking=` (any value),
    loaders that do not pin (GO510 reports those), copies to the CPU or to a
    dtype, tensors that are not from the batch, inference scripts.

    ## Why is this bad
    Pinning only pays off fully when the copy is asynchronous: a blocking
    `.to("cuda")` makes the host wait until the copy (and the work queued
    before it) is done before it can queue the next kernels, so the GPU
    idles between steps. PyTorch's guide to `non_blocking` and
    `pin_memory()` recommends `non_blocking=True` for host-to-device copies
    and notes that this direction is safe without an explicit
    synchronisation: later kernels on the same stream wait for the copy.

    ## Example
    ```python
    for x, y in train_loader:          # DataLoader(..., pin_memory=True)
        x, y = x.to(device), y.to(device)
    ```

    ## Fix
    `x.to(device, non_blocking=True)` / `x.cuda(non_blocking=True)`
    (autofix, safe: the loader's batch is in pinned memory and is not
    written again, and kernels on the stream are ordered after the copy).

    ## Estimate
    Time factor of training: 1.0x to 1.1x (derived): at most the copy's
    share of the step, which the overlap hides, with that share assumed to
    be at most 10%. It depends on the GPU and the link: the faster the GPU's
    step against the batch's bytes over PCIe, the larger the share. No
    published measurement isolates `non_blocking=True` (creedengo GCI102
    compares `pin_memory` off and on, GO510's change, not this one).

    ## When it is material
    In the training loop. Copies in an evaluation loop (under
    `torch.no_grad()`/`inference_mode`, or in a function named
    `evaluate`/`validate`/`test`/`predict`) are reported at severity info
    (hidden unless `--show-info`): an evaluation pass is a small share of a
    training run, and its loop usually reads a metric on the host every
    batch (`correct += ....item()`), which waits for the copy anyway.
    """

    code = "GO511"
    name = "blocking-host-to-device"
    family = "efficiency"
    estimate_sources = {
        SOURCE_DERIVED: "any hardware: the copy's share of the step (assumed at most 10%), which the overlap hides",
    }
    fixable = True
    fix_safety = "safe"
    tokens = ("pin_memory",)
    INVALID = [
        Invalid(
            """
            import torch
            from torch.utils.data import DataLoader
            loader = DataLoader(train_ds, batch_size=64, num_workers=4, pin_memory=True)
            device = torch.device("cuda")
            for x, y in loader:
                x, y = x.to(device), y.to(device, non_blocking=True)
                criterion(model(x), y).backward()
            """,
            line=6,
            message="copies a batch from a pinned loader to the GPU without non_blocking=True",
            fixed="""
            import torch
            from torch.utils.data import DataLoader
            loader = DataLoader(train_ds, batch_size=64, num_workers=4, pin_memory=True)
            device = torch.device("cuda")
            for x, y in loader:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                criterion(model(x), y).backward()
            """,
        ),
        Invalid(
            """
            import torch as T
            from torch.utils.data import DataLoader as DL
            train_loader = DL(train_ds, batch_size=16, pin_memory=T.cuda.is_available())
            for step, batch in enumerate(train_loader):
                batch = {k: v.cuda() for k, v in batch.items()}
                model(**batch).loss.backward()
            """,
            line=5,
            fixed="""
            import torch as T
            from torch.utils.data import DataLoader as DL
            train_loader = DL(train_ds, batch_size=16, pin_memory=T.cuda.is_available())
            for step, batch in enumerate(train_loader):
                batch = {k: v.cuda(non_blocking=True) for k, v in batch.items()}
                model(**batch).loss.backward()
            """,
        ),
    ]
    VALID = [
        # non_blocking already set.
        """
        import torch
        from torch.utils.data import DataLoader
        loader = DataLoader(train_ds, batch_size=64, pin_memory=True)
        for x, y in loader:
            x = x.to("cuda", non_blocking=True)
            model(x).sum().backward()
        """,
        # The loader does not pin (GO510's finding, not this one).
        """
        import torch
        from torch.utils.data import DataLoader
        loader = DataLoader(train_ds, batch_size=64)
        for x, y in loader:
            model(x.to("cuda")).sum().backward()
        """,
        # Not a batch: the model, a dtype cast, a copy to the CPU.
        """
        import torch
        from torch.utils.data import DataLoader
        loader = DataLoader(train_ds, batch_size=64, pin_memory=True)
        for x, y in loader:
            model.to("cuda")
            x = x.to(torch.float16)
            y.to("cpu")
            x.sum().backward()
        """,
        # Inference.
        """
        import torch
        from torch.utils.data import DataLoader
        loader = DataLoader(images, batch_size=64, pin_memory=True)
        with torch.no_grad():
            for x in loader:
                outputs.append(model(x.cuda()))
        """,
    ]

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        self._active: Optional[bool] = None
        # One entry per loop over a pinned loader being walked: the names that hold its batch, and
        # whether the loop evaluates (no training step).
        self.loops: list[tuple[cst.For, set[str], bool]] = []

    def _applies(self) -> bool:
        if self._active is None:
            self._active = trains_on_cuda(self.ctx)
        return self._active

    def visit_For(self, node: cst.For) -> None:
        if not self._applies():
            return
        iterable = node.iter
        while isinstance(iterable, cst.Call) and iterable.args and self.ctx.call_name(iterable) in _ITERATION_WRAPPERS:
            iterable = iterable.args[0].value
        loader = self.ctx.value_of(iterable) if isinstance(iterable, (cst.Name, cst.Attribute)) else iterable
        if isinstance(loader, cst.Call) and is_dataloader(self.ctx, loader) and self._pins(loader):
            names = bound_names(node.target)
            if isinstance(node.target, cst.Tuple) and isinstance(node.iter, cst.Call) and names:
                # enumerate(loader): the first name is the index
                first = node.target.elements[0].value
                if isinstance(first, cst.Name) and self.ctx.call_name(node.iter) == "builtins.enumerate":
                    names.discard(first.value)
            self.loops.append((node, names, self._evaluates()))

    def leave_For(self, original_node: cst.For) -> None:
        if self.loops and self.loops[-1][0] is original_node:
            self.loops.pop()

    def _evaluates(self) -> bool:
        if grad_mode(self.ctx) == "off":
            return True
        function = self.ctx.enclosing_function()
        return function is not None and bool(_EVALUATION_FRAME.match(function.name.value))

    def _pins(self, loader: cst.Call) -> bool:
        arg = get_arg(loader, "pin_memory", PIN_MEMORY_POSITION)
        if arg is None:
            return False
        value = literal_value(arg.value)
        if value is NOT_LITERAL:
            return "cuda" in self.ctx.snippet(arg.value, 200).lower()
        return value is True

    def _batch_root(self, expr: cst.BaseExpression) -> bool:
        """`batch`, `batch["x"]`, `batch.x`, `batch[0]` for a name that holds the batch."""
        names = self.loops[-1][1]
        while isinstance(expr, (cst.Subscript, cst.Attribute)):
            expr = expr.value
        return isinstance(expr, cst.Name) and expr.value in names

    def visit_Assign(self, node: cst.Assign) -> None:
        if not self.loops:
            return
        value = node.value
        parts = [e.value for e in value.elements] if isinstance(value, cst.Tuple) else [value]
        if all(self._batch_root(part) for part in parts):
            for target in node.targets:
                self.loops[-1][1].update(bound_names(target.target))

    def _comprehension(self, node) -> None:
        if not self.loops:
            return
        for_in = node.for_in
        while for_in is not None:
            iterable = for_in.iter
            if (
                isinstance(iterable, cst.Call)
                and isinstance(iterable.func, cst.Attribute)
                and (iterable.func.attr.value in ("items", "values"))
            ):
                iterable = iterable.func.value
            if self._batch_root(iterable):
                self.loops[-1][1].update(bound_names(for_in.target))
            for_in = for_in.inner_for_in

    visit_DictComp = _comprehension
    visit_ListComp = _comprehension
    visit_GeneratorExp = _comprehension
    visit_SetComp = _comprehension

    def visit_Call(self, node: cst.Call) -> None:
        if not self.loops or not device_transfer(self.ctx, node):
            return
        func = node.func
        assert isinstance(func, cst.Attribute)
        if get_arg(node, "non_blocking", _NON_BLOCKING_POSITION[func.attr.value]) is not None:
            return
        if not self._batch_root(func.value):
            return
        evaluation = self.loops[-1][2]
        where = " in an evaluation loop (a small share of training)" if evaluation else ""
        self.report(
            node,
            f"{self.ctx.snippet(node)} copies a batch from a pinned loader to the GPU without non_blocking=True"
            f"{where}: the host waits for the copy instead of queueing the next kernels; pass non_blocking=True",
            SavingsEstimate(
                metric="time_factor",
                low=TIME_FACTOR_LOW,
                high=TIME_FACTOR_HIGH,
                unit="x training time",
                basis="at most the copy's share of the step, which an asynchronous copy from pinned memory "
                "overlaps with the kernels queued after it (PyTorch's non_blocking/pin_memory guide); the share is "
                f"assumed at most {ASSUMED_COPY_SHARE:.0%}: no published measurement isolates non_blocking=True",
                hardware=self.ctx.hardware.key,
                assumptions=(
                    "the share grows with the batch's bytes over the host link against the GPU step time",
                    *(("an evaluation loop: below the materiality threshold",) if evaluation else ()),
                ),
                source=SOURCE_DERIVED,
            ),
            fix=Fix(
                node,
                lambda updated: with_keyword(updated, "non_blocking", cst.Name("True")),
                safe=True,
                title="non_blocking=True",
            ),
            severity="info" if evaluation else None,
        )
