"""Is a file a training script? The fact that `check --statistics` spreads a
workload over (statistics.py), found during the one walk and kept with the
file's result (and in the result cache).

A *training call* runs, or hands over, a training step:

- `.backward(...)` (PyTorch; `accelerator.backward(loss)`);
- an optimizer's `.step()` (`loops.is_optimizer`: named like one, or built by
  `torch.optim`; not a scheduler);
- `.apply_gradients(...)` (Keras optimizers, Flax's `TrainState`), or a
  GradientTape's `.gradient(...)` (a receiver named `tape`);
- `.fit(...)`, `.partial_fit`, `.fit_generator`, `.train_on_batch` (Keras,
  scikit-learn, Lightning's `Trainer.fit`), unless the receiver is named like
  a preprocessor (`scaler.fit(X)`);
- a trainer's `.train()` (`Trainer(...).train()`, `trainer.train()`: the
  receiver is named `*trainer*` or built by a `*Trainer(...)` call;
  `model.train()` only switches a mode);
- `jax.grad` / `jax.value_and_grad` (and Flax's and Equinox's);
- `LightningCLI(...)`, which runs `fit` itself.

A file is a *training script* when its module-level code (a notebook's cells,
`if __name__ == "__main__":`) reaches a training call: directly, or through
the functions and methods of the module that it calls or hands to a call
(`main()`, `mp.spawn(train, ...)`, `fire.Fire(main)`, `Runner(cfg).run()`),
at any depth, matched by name (a name the module defines twice counts for
both). A module whose training calls only sit in functions that nothing at
module level reaches (a library's `train_one_epoch`, a LightningModule whose
steps the framework runs) is not one: its code runs in the scripts that
import it, so the module's imports are recorded too.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Union

import libcst as cst

from greenops_lint.analysis.loops import is_optimizer
from greenops_lint.analysis.names import dotted_name
from greenops_lint.analysis.tree import last_word

if TYPE_CHECKING:  # pragma: no cover
    from greenops_lint.context import FileContext

# Every training call's source holds one of these: a file without any is not
# a training script, and the engine's prefilter may skip its tree.
TRAINING_TOKENS = ("backward", ".step(", "grad", "fit(", "fit_generator", ".train(", "train_on_batch", "LightningCLI")

# The kinds of training call, in words (for --statistics).
TRAINING_CALLS = (
    ".backward()",
    "an optimizer's .step()",
    ".apply_gradients()",
    "GradientTape.gradient()",
    ".fit()",
    "a trainer's .train()",
    "jax.grad()",
    "LightningCLI()",
)
FIT_METHODS = frozenset({"fit", "partial_fit", "fit_generator", "train_on_batch"})
_PREPROCESSOR = re.compile(r"scal|encod|imput|vectori[sz]|normali[sz]|tokeni[sz]|pca|transformer$", re.IGNORECASE)
_TRAINER = re.compile(r"trainer", re.IGNORECASE)
_TAPE = re.compile(r"tape", re.IGNORECASE)
_GRAD_FUNCTIONS = frozenset({"grad", "value_and_grad", "filter_grad", "filter_value_and_grad"})
_GRAD_LIBRARIES = ("jax.", "flax.", "equinox.")


@dataclass(frozen=True)
class ScriptFacts:
    """What `--statistics` needs to know of one checked file."""

    # The kinds of training call its module-level code reaches (sorted); empty
    # when it is not a training script.
    training_calls: tuple[str, ...] = ()
    # The modules it imports, as written, relative ones with their dots
    # (`pkg.model`, `pkg.model.Net`, `.model`): which files it runs.
    imports: tuple[str, ...] = ()

    @property
    def is_training_script(self) -> bool:
        return bool(self.training_calls)


def training_call(ctx: "FileContext", node: cst.Call) -> Optional[str]:
    """The kind of training call `node` is (a few words), or None."""
    func = node.func
    if type(func) is cst.Attribute:
        method = func.attr.value
        receiver = func.value
        if method == "backward":
            return ".backward()"
        if method == "step":
            return "an optimizer's .step()" if is_optimizer(ctx, receiver) else None
        if method == "apply_gradients":
            return ".apply_gradients()"
        if method == "gradient":
            return "GradientTape.gradient()" if _TAPE.search(last_word(receiver)) else None
        if method in FIT_METHODS:
            return None if _PREPROCESSOR.search(last_word(receiver)) else f".{method}()"
        if method == "train":
            return "a trainer's .train()" if _is_trainer(ctx, receiver) else None
    qualified = ctx.call_name(node)
    if qualified is None:
        return None
    last = qualified.rsplit(".", 1)[-1]
    if last in _GRAD_FUNCTIONS and qualified.startswith(_GRAD_LIBRARIES):
        return f"{qualified}()"
    if last == "LightningCLI":
        return "LightningCLI()"
    return None


def _is_trainer(ctx: "FileContext", receiver: cst.BaseExpression) -> bool:
    if _TRAINER.search(last_word(receiver)):
        return True
    value = receiver if type(receiver) is cst.Call else ctx.value_of(receiver)
    return isinstance(value, cst.Call) and bool(_TRAINER.search(last_word(value.func)))


def _callee(func: cst.BaseExpression) -> Optional[str]:
    """The name by which a call may run a function or method of the module."""
    if type(func) is cst.Name:
        return func.value
    if type(func) is cst.Attribute:
        return func.attr.value
    return None


class TrainingScript:
    """Walk-fed: the training calls of each function of the module, which
    names each function (or the module level) calls, and the imports."""

    def __init__(self, ctx: "FileContext") -> None:
        self.ctx = ctx
        self._frames: list[Optional[str]] = [None]  # None: module-level code
        self.calls: dict[Optional[str], set[str]] = defaultdict(set)
        self.training: dict[Optional[str], set[str]] = defaultdict(set)
        self.imports: set[str] = set()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._frames.append(node.name.value)

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._frames.pop()

    def visit_Call(self, node: cst.Call) -> None:
        frame = self._frames[-1]
        kind = training_call(self.ctx, node)
        if kind is not None:
            self.training[frame].add(kind)
        callee = _callee(node.func)
        if callee is not None:
            self.calls[frame].add(callee)
        for arg in node.args:  # `mp.spawn(train)`, `Process(target=main)`
            if type(arg.value) is cst.Name:
                self.calls[frame].add(arg.value.value)

    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            name = dotted_name(alias.name)
            if name:
                self.imports.add(name)

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        module = dotted_name(node.module) if node.module is not None else ""
        names = (
            ()
            if isinstance(node.names, cst.ImportStar)
            else [a.name.value for a in node.names if type(a.name) is cst.Name]
        )
        self.imports.update(_from_import(len(node.relative), module or "", names))

    def facts(self) -> ScriptFacts:
        reached: set[Optional[str]] = {None}
        pending: list[Optional[str]] = [None]
        while pending:
            for callee in self.calls.get(pending.pop(), ()):
                if callee not in reached:
                    reached.add(callee)
                    pending.append(callee)
        kinds = {kind for frame in reached for kind in self.training.get(frame, ())}
        return ScriptFacts(tuple(sorted(kinds)), tuple(sorted(self.imports)))


def _from_import(level: int, module: str, names) -> list[str]:
    """`from .m import a` -> [".m", ".m.a"]: the module, and each name as a
    possible submodule."""
    base = "." * level + module
    joined = f"{base}." if module else base
    return ([base] if base else []) + [f"{joined}{name}" for name in names]


def imports_of_tree(tree: ast.Module) -> tuple[str, ...]:
    """The imports of a file the prefilter did not give to LibCST (CPython's
    tree of its syntax check): statements only, nested ones included."""
    found: set[str] = set()
    pending: list[Union[ast.stmt, ast.excepthandler]] = list(tree.body)
    while pending:
        statement = pending.pop()
        if isinstance(statement, ast.Import):
            found.update(alias.name for alias in statement.names)
        elif isinstance(statement, ast.ImportFrom):
            names = [alias.name for alias in statement.names if alias.name != "*"]
            found.update(_from_import(statement.level, statement.module or "", names))
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                block = getattr(statement, field, None)
                if isinstance(block, list):
                    pending.extend(block)
    return tuple(sorted(found))
