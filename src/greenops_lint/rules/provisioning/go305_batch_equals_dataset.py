"""GO305: a training loader or `fit` whose batch is the whole dataset (off by default)."""

from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import get_arg, literal_value
from greenops_lint.analysis.dataloaders import DATALOADER_CLASSES as _DATALOADERS
from greenops_lint.analysis.dataloaders import EVAL_MARKERS as _EVAL_MARKERS
from greenops_lint.rule import Invalid, Rule
from greenops_lint.rules.provisioning._shared import method_name
from greenops_lint.walker import children

# No estimate (see the page): the cost depends on dataset size and convergence.
# The mini-batch sizes the message suggests.
MINI_BATCH_LOW, MINI_BATCH_HIGH = 32, 512

# Methods that need the full batch by design (second-order optimisers, exact
# or variational GPs, HMC/MCMC samplers, physics-informed nets, Cox models).
_FULL_BATCH_BY_DESIGN = re.compile(
    r"LBFGS|gpytorch|\bHMC\b|MCMC|\bNUTS\b|\bpyro\b|numpyro|PINN|physics[-_ ]informed|CoxPH|lifelines|pycox"
)
_FULL_BATCH_COMMENT = re.compile(
    r"#[^\n]*(full[- ]?batch|whole (data|training|train)|entire (data|training|train)|all (the )?(samples|data|rows)"
    r"|at once)",
    re.IGNORECASE,
)
_MESSAGE = (
    "batch_size={batch} makes the whole training set ({data}) one batch: one optimizer step per epoch and "
    "activation memory that grows with the dataset; "
    f"use a mini-batch (e.g. {MINI_BATCH_LOW}-{MINI_BATCH_HIGH}) and tune the learning rate"
)


class BatchEqualsDataset(Rule):
    """Trains on the whole dataset as one batch.

    ## What it does
    Flags a training loader or `fit` whose batch size is the size of the data
    it loads: `DataLoader(train_ds, batch_size=len(train_ds))`,
    `DataLoader(TensorDataset(X, y), batch_size=X.shape[0], shuffle=True)`,
    `model.fit(x_train, y_train, batch_size=len(x_train))`, also through a
    constant (`N = len(train_ds)` ... `batch_size=N`). The size expression
    must measure the same data the loader loads (`len()`, `.shape[0]`,
    `.size(0)`), and a `DataLoader` must be a training loader: it shuffles
    (`shuffle=True`) and has no "val"/"test"/"eval"/"pred" in its own or its
    dataset's name. Without shuffling, a whole-set loader is usually there to
    get all the data at once (arrays for a kNN, a plot, an evaluation pass).

    Not flagged: evaluation or prediction loaders (one big batch for
    inference is fine), `batch_size=len(classes)` or other sizes of other
    data, a loader only used as `next(iter(loader))` (loading everything once
    to compute statistics or get arrays), `tfds.load(..., batch_size=-1)`
    (materialises a split as arrays, on purpose), and deliberate full-batch
    training: a comment on the statement that says so (`# full batch`, `# all
    samples at once`), or a module that uses a method that needs it (L-BFGS,
    GPyTorch, HMC/MCMC/NUTS samplers, Pyro, physics-informed nets, Cox models).

    ## Why is this bad
    Full-batch training does one optimizer step per epoch: mini-batch SGD
    reaches the same loss in far fewer passes over the data, so the same
    result costs many more epochs of GPU time. Activation memory grows with
    the dataset instead of staying fixed, so the job needs a larger GPU (or
    fails once the data grows), and a shuffled full batch does no shuffling at
    all. It is usually an accident of a small-data prototype.

    ## Fix
    Use a mini-batch (32-512 is typical) and tune the learning rate for it. If
    full-batch gradient descent is intended (L-BFGS, some physics-informed
    models), keep it and add `# noqa: GO305`.

    Off by default (info), kept off after the issue 17 triage although the
    product brief names "maxed-out batch settings": on 28 wheels of real ML
    code (transformers, lightning, keras, ...) it had no finding, so its
    precision on real code is not measured, and what a finding costs depends
    on the dataset size and on convergence, which neither the code nor a
    micro-benchmark shows: the finding carries no estimate, and default-on
    rules must. Turn it on with `extend-select = ["GO305"]`.
    """

    code = "GO305"
    name = "batch-equals-dataset"
    severity = "info"
    default_enabled = False
    family = "provisioning"
    tokens = ("batch_size",)
    INVALID = [
        Invalid(
            """
            from torch.utils.data import DataLoader
            train_loader = DataLoader(train_ds, batch_size=len(train_ds), shuffle=True)
            """,
            line=2,
            message="batch_size=len(train_ds) makes the whole training set (train_ds) one batch",
        ),
        """
        from torch.utils.data import DataLoader, TensorDataset
        loader = DataLoader(TensorDataset(X, y), batch_size=X.shape[0], shuffle=True)
        """,
        """
        history = model.fit(x_train, y_train, epochs=200, batch_size=len(x_train))
        """,
    ]
    VALID = [
        """
        from torch.utils.data import DataLoader
        val_loader = DataLoader(val_ds, batch_size=len(val_ds))
        """,
        """
        from torch.utils.data import DataLoader
        train_loader = DataLoader(train_ds, batch_size=len(classes), shuffle=True)
        """,
        """
        import tensorflow_datasets as tfds
        images, labels = tfds.as_numpy(tfds.load("mnist", split="train", batch_size=-1, as_supervised=True))
        """,
    ]

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        # Loaders bound to a name, decided at the end of the module.
        self.pending: list[tuple[str, cst.Arg, Optional[cst.CSTNode], str]] = []

    def visit_Call(self, node: cst.Call) -> None:
        name = self.ctx.call_name(node)
        if name in _DATALOADERS:
            data = get_arg(node, "dataset", 0)
            batch = get_arg(node, "batch_size", 1)
            if data is None or batch is None or not self._training_loader(node, data.value):
                return
        elif method_name(node) == "fit" and name is None:
            data = get_arg(node, "x", 0)
            batch = get_arg(node, "batch_size")
            if data is None or batch is None:
                return
        else:
            return
        subject = self._size_subject(batch.value, 0)
        if subject is None or not self._same_data(subject, data.value):
            return
        if _FULL_BATCH_BY_DESIGN.search(self.ctx.text):
            return
        statement = self.ctx.enclosing_statement()
        if statement is not None and _FULL_BATCH_COMMENT.search(self.ctx.module.code_for_node(statement)):
            return  # `# full batch` next to it: deliberate
        message = _MESSAGE.format(batch=self.ctx.snippet(batch.value), data=self.ctx.snippet(data.value))
        if name in _DATALOADERS:
            parent = self.ctx.parent()
            grandparent = self.ctx.parent(2)
            if (
                isinstance(parent, cst.Arg)
                and isinstance(grandparent, cst.Call)
                and self.ctx.call_name(grandparent) == "builtins.iter"
            ):
                return  # next(iter(DataLoader(ds, batch_size=len(ds)))): loads everything once
            if (
                isinstance(parent, cst.Assign)
                and len(parent.targets) == 1
                and isinstance(parent.targets[0].target, cst.Name)
            ):
                # Decided at the end of the module: a loader only used as
                # `next(iter(loader))` loads the data once (to compute
                # statistics, or to get arrays), it does not train on it.
                self.pending.append((parent.targets[0].target.value, batch, self.ctx.enclosing_statement(), message))
                return
        self.report(batch, message)

    def leave_Module(self, node: cst.Module) -> None:
        if not self.pending:
            return
        uses, iter_uses = _name_uses(node, {name for name, *_ in self.pending})
        for name, batch, statement, message in self.pending:
            if uses.get(name, 0) and uses.get(name, 0) == iter_uses.get(name, 0):
                continue
            self.report(batch, message, statement=statement)

    def _training_loader(self, node: cst.Call, data: cst.BaseExpression) -> bool:
        names = [self.ctx.snippet(data, 200)]
        parent = self.ctx.parent()
        if isinstance(parent, cst.Assign):
            names += [self.ctx.snippet(t.target, 200) for t in parent.targets]
        elif isinstance(parent, cst.AnnAssign):
            names.append(self.ctx.snippet(parent.target, 200))
        if any(_EVAL_MARKERS.search(n) for n in names):
            return False
        # Only shuffling says "training": a whole-set loader without it is
        # usually there to get all the data at once (arrays for a kNN, a
        # plot, an evaluation pass over the training set).
        shuffle = get_arg(node, "shuffle", 2)
        return shuffle is not None and literal_value(shuffle.value) is True

    def _size_subject(self, node: cst.BaseExpression, depth: int) -> Optional[cst.BaseExpression]:
        """`S` when `node` is `len(S)`, `S.shape[0]` or `S.size(0)` (through names)."""
        if depth > 4:
            return None
        if isinstance(node, cst.Call):
            name = self.ctx.call_name(node)
            if name == "builtins.len" and len(node.args) == 1 and node.args[0].keyword is None:
                return node.args[0].value
            func = node.func
            if (
                isinstance(func, cst.Attribute)
                and func.attr.value == "size"
                and len(node.args) == 1
                and literal_value(node.args[0].value) == 0
            ):
                return func.value
            if name == "builtins.int" and node.args:
                return self._size_subject(node.args[0].value, depth + 1)
            return None
        if (
            isinstance(node, cst.Subscript)
            and isinstance(node.value, cst.Attribute)
            and node.value.attr.value == "shape"
            and len(node.slice) == 1
            and isinstance(node.slice[0].slice, cst.Index)
            and literal_value(node.slice[0].slice.value) == 0
        ):
            return node.value.value
        if isinstance(node, cst.Name):
            value = self.ctx.value_of(node)
            if isinstance(value, cst.BaseExpression):
                return self._size_subject(value, depth + 1)
        return None

    def _same_data(self, subject: cst.BaseExpression, data: cst.BaseExpression) -> bool:
        """Does `subject` measure the data a loader loads (`data`, or one of the
        arrays it wraps: `TensorDataset(X, y)` directly or through a name)?"""
        ctx = self.ctx
        wanted = ctx.snippet(subject, 500)
        candidates = [data]
        if isinstance(data, cst.Name):
            value = ctx.value_of(data)
            if isinstance(value, cst.BaseExpression):
                candidates.append(value)
        for candidate in candidates:
            if ctx.snippet(candidate, 500) == wanted:
                return True
            if isinstance(candidate, cst.Call):
                for arg in candidate.args:
                    if not arg.star and ctx.snippet(arg.value, 500) == wanted:
                        return True
        return False


def _name_uses(module: cst.Module, names: set[str]) -> tuple[dict[str, int], dict[str, int]]:
    """How often each name is read in the module, and how often as `iter(name)`."""
    uses: dict[str, int] = {}
    iter_uses: dict[str, int] = {}
    stack: list[cst.CSTNode] = [module]
    while stack:
        current = stack.pop()
        if isinstance(current, cst.Assign):
            # Targets are stores, not reads.
            stack.append(current.value)
            for target in current.targets:
                if not isinstance(target.target, cst.Name):
                    stack.append(target.target)
            continue
        if isinstance(current, cst.Name) and current.value in names:
            uses[current.value] = uses.get(current.value, 0) + 1
        elif (
            isinstance(current, cst.Call)
            and isinstance(current.func, cst.Name)
            and current.func.value == "iter"
            and len(current.args) == 1
            and isinstance(current.args[0].value, cst.Name)
            and current.args[0].value.value in names
        ):
            iter_uses[current.args[0].value.value] = iter_uses.get(current.args[0].value.value, 0) + 1
        stack.extend(children(current))
    return uses, iter_uses
