"""GO103 dataloader-rebuilt-per-epoch: the DataLoader or Dataset built again in every epoch."""

from __future__ import annotations

import libcst as cst

from greenops_lint.analysis.calls import get_arg, literal_value
from greenops_lint.analysis.candidates import Candidate
from greenops_lint.analysis.loops import Repetition, referenced_names
from greenops_lint.analysis.tree import last_part, walk_expr
from greenops_lint.rule import Invalid
from greenops_lint.rules.caching._shared import RepeatedWorkRule
from greenops_lint.savings import SOURCE_COUNTED

# -- estimate (`## Estimate`): (epochs - 1) extra worker start-ups or dataset scans
REPEATED = "loader start-ups"
_ORDERING = (cst.GreaterThan, cst.GreaterThanEqual, cst.LessThan, cst.LessThanEqual, cst.NotEqual)


class DataLoaderRebuiltPerEpoch(RepeatedWorkRule):
    """Builds the DataLoader or Dataset again in every epoch.

    ## What it does
    Flags `torch.utils.data.DataLoader(..., num_workers=N)` (N not 0), a
    `torchvision.datasets` constructor or a `Dataset` subclass of the module
    constructed inside an epoch loop (or in a function of the module called
    once per epoch), when its arguments are the same in every epoch.

    ## Why is this bad
    A new DataLoader starts its worker processes again (each re-imports
    modules and receives a pickled copy of the dataset), and a new Dataset
    re-scans or re-reads its files. Reported costs range from seconds per
    epoch to minutes of data initialisation (open-mmlab/mmhuman3d PR #233:
    ~7 min to ~35 s after keeping workers alive).

    Not flagged: loaders whose inputs change with the epoch (curriculum
    learning, progressive resizing: the arguments use the epoch variable),
    loaders rebuilt under a test of the epoch (`if epoch > 0:` switching from
    an ordered first epoch to shuffled ones: a deliberate schedule, and
    without `persistent_workers` the workers restart every epoch anyway, so
    the rebuild costs only the construction), a branch that builds once and
    leaves the loop (`return`/`break`), test files,
    DataLoaders with `num_workers=0` or no `num_workers` (no workers to
    restart; building the object itself is cheap), and loaders built inside
    a step loop for other reasons.

    ## Fix
    Build the Dataset and DataLoader once before the epoch loop; reshuffle
    with the sampler (`DistributedSampler.set_epoch(epoch)`), and keep
    workers alive with `persistent_workers=True` (see GO105).

    ## Estimate
    Repeated work: (epochs - 1) extra worker start-ups or dataset scans; the
    probe measures time-to-first-batch.
    """

    code = "GO103"
    name = "dataloader-rebuilt-per-epoch"
    family = "caching"
    estimate_sources = {
        SOURCE_COUNTED: "any hardware: a count read from the code; the seconds each repetition costs are measured by `greenops-lint probe`",
    }
    loop_kinds = frozenset({"epoch"})
    analyses = RepeatedWorkRule.analyses + ("dataset_classes",)
    tokens = ("DataLoader", "datasets", "Dataset")
    INVALID = [
        Invalid(
            """
            from torch.utils.data import DataLoader
            for epoch in range(20):
                loader = DataLoader(train_set, batch_size=64, shuffle=True, num_workers=8)
                for x, y in loader:
                    loss = model(x, y)
                    loss.backward()
            """,
            line=3,
            message="DataLoader(...) is rebuilt on every iteration of the epoch loop (20 iterations)",
        ),
    ]
    VALID = [
        """
        from torch.utils.data import DataLoader
        loader = DataLoader(train_set, batch_size=64, shuffle=True, num_workers=8)
        for epoch in range(20):
            for x, y in loader:
                loss = model(x, y)
                loss.backward()
        """,
        """
        from torch.utils.data import DataLoader
        for epoch in range(20):
            loader = DataLoader(subsets[epoch], batch_size=64, num_workers=8)
            for x, y in loader:
                model(x, y).backward()
        """,
        """
        from torch.utils.data import DataLoader
        loader = DataLoader(corpus.train, shuffle=False, num_workers=4)
        for epoch in range(start_epoch, max_epochs):
            if epoch > 0:
                loader = DataLoader(corpus.train, shuffle=True, num_workers=4)
            for x, y in loader:
                model(x, y).backward()
        """,
    ]

    def extra_guard(self, node: cst.CSTNode, child: cst.CSTNode, variant) -> bool:
        """`if epoch > 0:` (any ordering test on a name that changes in the loop):
        a deliberate schedule, such as an ordered first epoch and shuffled ones
        after it. Without `persistent_workers` the workers restart every epoch
        anyway, so the rebuild costs only the construction."""
        if super().extra_guard(node, child, variant):
            return True
        if not isinstance(node, cst.If) or child is not node.body:
            return False
        for current in walk_expr(node.test):
            if isinstance(current, cst.Comparison) and any(
                isinstance(c.operator, _ORDERING) for c in current.comparisons
            ):
                if any(name in variant for name in referenced_names(current)):
                    return True
        return False

    def visit_Call(self, node: cst.Call) -> None:
        qualified = self.ctx.call_name(node)
        if qualified == "torch.utils.data.DataLoader":
            workers = get_arg(node, "num_workers", 6)
            if workers is None or literal_value(workers.value) == 0:
                return
            self.record(node, "DataLoader", kind="loader")
        elif qualified and qualified.startswith("torchvision.datasets.") and last_part(qualified)[:1].isupper():
            self.record(node, last_part(qualified), kind="dataset")
        elif (
            qualified is None
            and isinstance(node.func, cst.Name)
            and self.ctx.dataset_classes.is_model_class(node.func.value)
        ):
            self.record(node, node.func.value, kind="dataset")

    def emit(self, candidate: Candidate, repetition: Repetition) -> None:
        if candidate.extra.get("kind") == "loader":
            cost = "which restarts its worker processes each time"
            fix = "build it once before the loop (reshuffle with sampler.set_epoch, keep workers with persistent_workers=True)"
        else:
            cost = "which re-indexes or re-reads its files each time"
            fix = "build it once before the loop"
        self.report(
            candidate.node,
            f"{candidate.label}(...) is rebuilt {self.where(repetition)}, {cost}; {fix}",
            self.repeated_estimate(repetition, REPEATED),
            statement=candidate.statement,
        )
