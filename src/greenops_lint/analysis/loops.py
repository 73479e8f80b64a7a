"""Loop context: does this code run once, or on every epoch or step?

The analysis is fed by the engine's single walk. While a loop's body is being
walked, every loop on the stack of the current function collects facts about
its body: the names assigned in it, whether it runs a training step
(`.backward()`, `optimizer.step()`, `tape.gradient`), and which functions of
the module it calls. Those facts are final once the walk leaves the loop, so
rules that need them record candidates during the walk and decide in
`leave_Module`, when `finish()` has classified every loop:

- a **step loop** runs a training step, or iterates a DataLoader / dataset;
- an **epoch loop** contains a step loop (directly, or through a function of
  the module that it calls), or iterates `range(<...epoch...>)`;
- any other loop is a plain loop.

One call deep (two levels): code in a function counts as running in every loop
from which that function (or a function calling it) is called.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator, Optional, Union

import libcst as cst

from greenops_lint.analysis.calls import literal_value
from greenops_lint.analysis.functions import statements
from greenops_lint.analysis.tree import descendants

if TYPE_CHECKING:  # pragma: no cover
    from greenops_lint.context import FileContext

FrameNode = Union[cst.FunctionDef, cst.Lambda, None]

_EPOCH = re.compile(r"epoch", re.IGNORECASE)
_LOADER_NAME = re.compile(r"(^|_)(dataloader|loader|batches|dataset|ds|dl)$|loader$", re.IGNORECASE)
_OPTIMIZER_NAME = re.compile(r"(opt|optim|optimizer|optimiser|scaler|trainer)", re.IGNORECASE)
_RETRY_NAME = re.compile(r"^(attempt|attempts|retry|retries|tries|try_|_try|n_try)$", re.IGNORECASE)
_DATA_ITERABLES = frozenset(
    {
        "torch.utils.data.DataLoader",
        "tensorflow.data.Dataset.from_tensor_slices",
        "tensorflow.data.TFRecordDataset",
        "tensorflow.data.Dataset.list_files",
    }
)
FRAMEWORK_STEP_METHODS = frozenset(
    {"forward", "training_step", "validation_step", "test_step", "predict_step", "train_step", "call"}
)
_WRAPPERS = frozenset(
    {"builtins.enumerate", "builtins.zip", "tqdm.tqdm", "tqdm.auto.tqdm", "tqdm.notebook.tqdm", "builtins.iter"}
)


def referenced_names(node: cst.CSTNode) -> set[str]:
    """Names an expression reads (not attribute names, not keyword names)."""
    from greenops_lint.walker import children

    found: set[str] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        current_type = type(current)
        if current_type is cst.Name:
            found.add(current.value)
        elif current_type is cst.Attribute:
            stack.append(current.value)
        elif current_type is cst.Arg:
            stack.append(current.value)
        elif current_type is cst.Lambda:
            continue
        else:
            stack.extend(children(current))
    return found


def is_optimizer(ctx: "FileContext", receiver: cst.BaseExpression) -> bool:
    """The receiver of an optimizer's `.step()`: named like one (`opt`,
    `self.optimizer`, `scaler`, `trainer`; not a scheduler), or bound to a
    `torch.optim` constructor."""
    name = (
        receiver.value
        if isinstance(receiver, cst.Name)
        else (receiver.attr.value if isinstance(receiver, cst.Attribute) else "")
    )
    if _OPTIMIZER_NAME.search(name or "") and "sched" not in (name or "").lower():
        return True
    value = ctx.value_of(receiver)
    if isinstance(value, cst.Call):
        qualified = ctx.call_name(value) or ""
        return qualified.startswith("torch.optim.") and ".lr_scheduler" not in qualified
    return False


def bound_names(target: cst.CSTNode) -> set[str]:
    if isinstance(target, cst.Name):
        return {target.value}
    if isinstance(target, (cst.Tuple, cst.List)):
        names: set[str] = set()
        for element in target.elements:
            names |= bound_names(element.value)
        return names
    if isinstance(target, cst.StarredElement):
        return bound_names(target.value)
    return set()


@dataclass(eq=False)
class LoopInfo:
    node: cst.CSTNode
    frame: FrameNode
    parent: Optional["LoopInfo"]
    targets: frozenset[str]
    iterable: Optional[cst.BaseExpression]
    count: Optional[int]
    epochish: bool
    iterates_data: bool
    assigned: set[str] = field(default_factory=set)
    has_train_step: bool = False
    calls: set[str] = field(default_factory=set)
    children: list["LoopInfo"] = field(default_factory=list)
    kind: str = "loop"  # "epoch", "step" or "loop", set by finish()
    names_epoch: bool = False  # a `while` test that names an epoch (`while epoch < max_epochs`): wording only
    framework: str = ""  # set for a method the framework calls per batch

    @property
    def is_retry(self) -> bool:
        return any(_RETRY_NAME.match(t) for t in self.targets)

    def variant_names(self) -> set[str]:
        """Names that may change from one iteration to the next."""
        return set(self.targets) | self.assigned

    def describe(self) -> str:
        """The loop in words. "epoch loop" only for a loop over epochs (its
        variable, its range or its `while` test names an epoch); any other loop
        around training (CV folds, hyperparameter generations, a test matrix)
        is named by what it iterates: "loop over fold"."""
        if self.framework:
            return f"training step ({self.framework} runs for every batch)"
        if self.kind == "epoch":
            if self.epochish or self.names_epoch:
                return "epoch loop"
            subject = self.subject()
            return f"loop over {subject}" if subject else "outer loop"
        if self.kind == "step":
            return "training step loop"
        return "loop"

    def subject(self) -> str:
        """What a `for` loop binds, as written (`fold`, `split_batches`; the first
        name of a tuple: `fold` for `fold, (train_idx, val_idx)`)."""
        target = getattr(self.node, "target", None) or getattr(getattr(self.node, "for_in", None), "target", None)
        if (
            isinstance(target, (cst.Tuple, cst.List))
            and target.elements
            and isinstance(target.elements[0].value, cst.Name)
        ):
            target = target.elements[0].value  # `for fold, (train_idx, val_idx) in ...`: the fold
        if target is None:
            return ""
        text = " ".join(cst.Module([]).code_for_node(target).split())
        return text if len(text) <= 40 else ""


@dataclass(eq=False)
class CallSite:
    name: str
    loops: tuple[LoopInfo, ...]  # innermost first, within the calling frame
    frame: FrameNode
    call: cst.Call

    @property
    def arg_names(self) -> frozenset[str]:
        """Names the call's arguments read (computed on demand: most call sites
        are never asked)."""
        names: set[str] = set()
        for arg in self.call.args:
            names |= referenced_names(arg.value)
        return frozenset(names)


@dataclass(frozen=True)
class Repetition:
    """How a piece of code repeats: the loop, and the call sites that lead there."""

    loop: LoopInfo
    via: tuple[CallSite, ...] = ()  # empty when the code is in the loop itself


class LoopAnalysis:
    """Walk-fed loop facts for one module (see the module docstring)."""

    def __init__(self, ctx: "FileContext") -> None:
        self.ctx = ctx
        self._frames: list[tuple[FrameNode, list[LoopInfo]]] = [(None, [])]
        self.loops: list[LoopInfo] = []
        self.call_sites: dict[str, list[CallSite]] = {}
        self.functions: dict[str, list[cst.FunctionDef]] = {}
        self.generators: set[int] = set()  # id() of frames that yield
        self.callbacks: set[str] = set()  # function names passed to .map()/.apply()
        self.callback_factories: set[str] = set()  # `.map(make_fn(...))`: make_fn returns the callback
        self.frame_class: dict[int, cst.ClassDef] = {}  # id(method) -> its class
        self._framework_steps: dict[int, LoopInfo] = {}
        self._finished = False

    # -- frames -----------------------------------------------------------------
    @property
    def current_loops(self) -> list[LoopInfo]:
        return self._frames[-1][1]

    @property
    def current_frame(self) -> FrameNode:
        return self._frames[-1][0]

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.functions.setdefault(node.name.value, []).append(node)
        cls = self.ctx.enclosing_class()
        if cls is not None:
            self.frame_class[id(node)] = cls
        self._frames.append((node, []))

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._frames.pop()

    def visit_Lambda(self, node: cst.Lambda) -> None:
        self._frames.append((node, []))

    def leave_Lambda(self, node: cst.Lambda) -> None:
        self._frames.pop()

    # -- loops ------------------------------------------------------------------
    def _push(self, node: cst.CSTNode, target: Optional[cst.CSTNode], iterable: Optional[cst.BaseExpression]) -> None:
        stack = self.current_loops
        parent = stack[-1] if stack else None
        count, epochish = self._iteration_count(iterable, target)
        info = LoopInfo(
            node=node,
            frame=self.current_frame,
            parent=parent,
            targets=frozenset(bound_names(target)) if target is not None else frozenset(),
            iterable=iterable,
            count=count,
            epochish=epochish,
            iterates_data=iterable is not None and self._iterates_data(iterable),
        )
        if parent is not None:
            parent.children.append(info)
        stack.append(info)
        self.loops.append(info)

    def _pop(self) -> None:
        self.current_loops.pop()

    def visit_For(self, node: cst.For) -> None:
        self._push(node, node.target, node.iter)

    def leave_For(self, node: cst.For) -> None:
        self._pop()

    def visit_While(self, node: cst.While) -> None:
        self._push(node, None, None)
        self.current_loops[-1].names_epoch = any(_EPOCH.search(part) for part in _expression_names(node.test))

    def leave_While(self, node: cst.While) -> None:
        self._pop()

    def _visit_comprehension(self, node) -> None:
        self._push(node, node.for_in.target, node.for_in.iter)

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _visit_comprehension

    def _leave_comprehension(self, node) -> None:
        self._pop()

    leave_ListComp = leave_SetComp = leave_DictComp = leave_GeneratorExp = _leave_comprehension

    # -- facts collected while a loop body is walked ------------------------------
    def _mark_assigned(self, target: cst.CSTNode) -> None:
        names = bound_names(target)
        if isinstance(target, (cst.Subscript, cst.Attribute)):
            names = referenced_names(target)  # `cache[k] = ...` changes `cache`
        for loop in self.current_loops:
            loop.assigned |= names

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            self._mark_assigned(target.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._mark_assigned(node.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._mark_assigned(node.target)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._mark_assigned(node.target)

    def visit_WithItem(self, node: cst.WithItem) -> None:
        if node.asname is not None:
            self._mark_assigned(node.asname.name)

    def visit_Yield(self, node: cst.Yield) -> None:
        self.generators.add(id(self.current_frame))

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        loops = self.current_loops
        if isinstance(func, cst.Attribute):
            if loops and self._is_train_step(func):
                for loop in loops:
                    loop.has_train_step = True
            if func.attr.value in ("map", "apply", "filter", "transform", "with_transform", "set_transform"):
                for arg in node.args:
                    if isinstance(arg.value, cst.Name):
                        self.callbacks.add(arg.value.value)
                    elif isinstance(arg.value, cst.Call) and isinstance(arg.value.func, cst.Name):
                        self.callback_factories.add(arg.value.func.value)
        name = None
        if isinstance(func, cst.Name):
            name = func.value
        elif isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self":
            name = func.attr.value
        if name is None:
            return
        self.call_sites.setdefault(name, []).append(CallSite(name, tuple(reversed(loops)), self.current_frame, node))
        for loop in loops:
            loop.calls.add(name)

    def _is_train_step(self, func: cst.Attribute) -> bool:
        method = func.attr.value
        if method == "backward":
            return True
        if method == "gradient":  # tf.GradientTape
            return True
        return method == "step" and is_optimizer(self.ctx, func.value)

    # -- classification -----------------------------------------------------------
    def _iteration_count(self, iterable, target) -> tuple[Optional[int], bool]:
        targets = bound_names(target) if target is not None else set()
        epochish = any(_EPOCH.search(t) for t in targets)
        if isinstance(iterable, cst.Call) and self.ctx.call_name(iterable) == "builtins.range":
            args = [a.value for a in iterable.args if a.keyword is None]
            epochish = epochish or any(_EPOCH.search(n) for a in args for n in _dotted_parts(a))
            values = [literal_value(a) for a in args]
            if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                start, stop = (0, values[0]) if len(values) == 1 else (values[0], values[1])
                step = values[2] if len(values) > 2 else 1
                return (max(0, (stop - start + (step - 1)) // step) if step > 0 else None), epochish
            if len(args) == 1:
                default = self._parameter_default(args[0])
                if default is not None:
                    return default, epochish
        return None, epochish

    def _parameter_default(self, node: cst.BaseExpression) -> Optional[int]:
        """`def train(epochs=30): for e in range(epochs)` -> 30."""
        frame = self.current_frame
        if not isinstance(node, cst.Name) or not isinstance(frame, cst.FunctionDef):
            return None
        for param in (*frame.params.params, *frame.params.kwonly_params):
            if param.name.value == node.value and param.default is not None:
                value = literal_value(param.default)
                if isinstance(value, int) and not isinstance(value, bool):
                    return value
        return None

    def _iterates_data(self, iterable: cst.BaseExpression, depth: int = 0) -> bool:
        if depth > 3:
            return False
        if isinstance(iterable, cst.Call):
            qualified = self.ctx.call_name(iterable)
            if qualified in _WRAPPERS:
                return any(self._iterates_data(a.value, depth + 1) for a in iterable.args if a.keyword is None)
            return qualified in _DATA_ITERABLES
        if isinstance(iterable, (cst.Name, cst.Attribute)):
            value = self.ctx.value_of(iterable)
            if isinstance(value, cst.Call):
                return self._iterates_data(value, depth + 1)
            name = iterable.value if isinstance(iterable, cst.Name) else iterable.attr.value
            return bool(_LOADER_NAME.search(name)) and "val" not in name.lower() and "test" not in name.lower()
        return False

    def leave_Module(self, node: cst.Module) -> None:
        self.finish()

    def finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        step_frames: set[str] = set()
        for loop in self.loops:
            if loop.has_train_step or loop.iterates_data:
                loop.kind = "step"
                if isinstance(loop.frame, cst.FunctionDef):
                    step_frames.add(loop.frame.name.value)
        # Functions that call a function with a step loop also run steps (two levels).
        for _ in range(2):
            for name, sites in self.call_sites.items():
                if name in step_frames:
                    for site in sites:
                        if isinstance(site.frame, cst.FunctionDef):
                            step_frames.add(site.frame.name.value)
        for loop in self.loops:
            has_step_inside = any(child.kind == "step" for child in _descendants(loop))
            if loop.epochish or has_step_inside or loop.calls & step_frames:
                loop.kind = "epoch"
        # `.map(make_tokenize(tok))`: the function the factory returns is the callback.
        for factory in self.callback_factories:
            for function in self.functions.get(factory, ()):
                for statement in statements(function.body):
                    if isinstance(statement, cst.Return) and isinstance(statement.value, cst.Name):
                        self.callbacks.add(statement.value.value)

    # -- queries (valid after finish()) --------------------------------------------
    def loops_at(self) -> tuple[LoopInfo, ...]:
        """The loops around the node being visited, innermost first (this frame only)."""
        return tuple(reversed(self.current_loops))

    def repetitions(self, direct: tuple[LoopInfo, ...], frame: FrameNode) -> Iterator[Repetition]:
        """Every loop that repeats code of `frame` at loops `direct`: the loops
        themselves, then loops around call sites of the frame, two levels up."""
        for loop in direct:
            yield Repetition(loop)
        if direct or not isinstance(frame, cst.FunctionDef):
            return
        step = self.framework_step(frame)
        if step is not None:
            yield Repetition(step)
            return
        for site in self.call_sites.get(frame.name.value, ()):
            if site.frame is frame:
                continue  # recursion
            for loop in site.loops:
                yield Repetition(loop, (site,))
            step = self.framework_step(site.frame) if not site.loops else None
            if step is not None:
                yield Repetition(step, (site,))
            elif not site.loops and isinstance(site.frame, cst.FunctionDef):
                for outer in self.call_sites.get(site.frame.name.value, ()):
                    if outer.frame is site.frame:
                        continue
                    for loop in outer.loops:
                        yield Repetition(loop, (site, outer))

    def framework_step(self, frame: FrameNode) -> Optional[LoopInfo]:
        """A model method that the framework calls for every batch (`forward`,
        Lightning's `training_step`, Keras' `train_step`/`call`), as a loop."""
        if not isinstance(frame, cst.FunctionDef) or frame.name.value not in FRAMEWORK_STEP_METHODS:
            return None
        cls = self.frame_class.get(id(frame))
        if cls is None or not self.ctx.model_classes.is_model_class(cls.name.value):
            return None
        loop = self._framework_steps.get(id(frame))
        if loop is None:
            loop = LoopInfo(
                node=frame,
                frame=frame,
                parent=None,
                targets=frozenset(),
                iterable=None,
                count=None,
                epochish=False,
                iterates_data=True,
                kind="step",
                framework=f"{cls.name.value}.{frame.name.value}()",
            )
            self._framework_steps[id(frame)] = loop
        return loop

    def is_generator(self, frame: FrameNode) -> bool:
        return id(frame) in self.generators


def _descendants(loop: LoopInfo) -> Iterator[LoopInfo]:
    return descendants(loop, _loop_children)


def _loop_children(loop: LoopInfo) -> list[LoopInfo]:
    return loop.children


def _expression_names(node: cst.BaseExpression) -> Iterator[str]:
    """Names and attribute names an expression reads (`self.epoch < self.max_epochs`)."""
    from greenops_lint.analysis.tree import walk_expr

    for current in walk_expr(node):
        if isinstance(current, cst.Name):
            yield current.value
        elif isinstance(current, cst.Attribute):
            yield current.attr.value


def _dotted_parts(node: cst.BaseExpression) -> list[str]:
    parts = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if isinstance(node, cst.Name):
        parts.append(node.value)
    elif isinstance(node, cst.Call):
        for arg in node.args:
            parts.extend(_dotted_parts(arg.value))
    return parts


def describe_repetition(repetition: Repetition) -> str:
    """`on every iteration of the epoch loop (30 iterations) that calls load()`."""
    loop = repetition.loop
    count = f" ({loop.count} iterations)" if loop.count else ""
    if repetition.via:
        chain = " -> ".join(f"{site.name}()" for site in repetition.via)
        return f"on every iteration of the {loop.describe()}{count} that calls {chain}"
    return f"on every iteration of the {loop.describe()}{count}"
