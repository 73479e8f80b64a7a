"""What only the GO1xx rules share: the same work done again on every iteration."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import libcst as cst

from greenops_lint.analysis.candidates import Candidate, CandidateRule
from greenops_lint.analysis.efficiency import exits_block
from greenops_lint.analysis.loops import FrameNode, Repetition
from greenops_lint.analysis.tree import is_test_file
from greenops_lint.finding import SavingsEstimate

if TYPE_CHECKING:  # pragma: no cover
    from greenops_lint.context import FileContext

# The `## Estimate` of every GO1xx rule: with a literal count, (iterations - 1)
# repetitions; otherwise a typical run of 2-100 epochs, that is 1-99 repetitions.
TYPICAL_EPOCHS = (2, 100)
UNKNOWN_REPEATS = (float(TYPICAL_EPOCHS[0] - 1), float(TYPICAL_EPOCHS[1] - 1))
UNKNOWN_COUNT = f"a typical training run has {TYPICAL_EPOCHS[0]}-{TYPICAL_EPOCHS[1]} epochs, more steps"

# Functions that run once per sample or per batch by design: lazy loading there is the normal pattern.
PER_SAMPLE_FUNCTIONS = frozenset({"__getitem__", "__getitems__", "__iter__", "__next__", "__call__", "collate_fn"})
CACHE_DECORATORS = frozenset(
    {"functools.lru_cache", "functools.cache", "functools.cached_property", "builtins.property", "joblib.Memory.cache"}
)
_CACHE_DECORATOR_ENDINGS = (".cache", "lru_cache", "cached_property", "memoize")


def leaves_the_loop(block: cst.CSTNode) -> bool:
    """The block (an `if`/`else`/`try`/`except` body) ends with return, break or raise."""
    if isinstance(block, (cst.Else, cst.Finally)):
        block = block.body
    if not isinstance(block, cst.BaseSuite):
        return False
    return exits_block(block)


class RepeatedWorkRule(CandidateRule):
    """A call that does the same work again on every epoch or step (not a rule itself)."""

    family = "caching"
    same_arguments = True
    loop_kinds = frozenset({"epoch", "step"})

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        self._memoised: dict[int, bool] = {}  # id(frame) -> decorated with a cache
        self.in_test_file = is_test_file(ctx.path)

    def report(self, node, message, estimate=None, statement=None, fix=None, severity=None) -> None:
        """Nothing in a test file (`test_*.py`, `conftest.py`, under `tests/`): a
        test loop runs the API it checks over a matrix of settings, each case
        from scratch; it is not a training workload."""
        if not self.in_test_file:
            super().report(node, message, estimate, statement, fix, severity)

    def record(self, node: cst.CSTNode, label: str = "", **extra) -> Candidate:
        candidate = super().record(node, label, **extra)
        frame = candidate.frame
        if id(frame) not in self._memoised:
            self._memoised[id(frame)] = self._is_memoised(frame)
        return candidate

    def _is_memoised(self, frame: FrameNode) -> bool:
        """`functools.lru_cache`, `cache`, `cached_property`, ...: the body runs once per argument."""
        if not isinstance(frame, cst.FunctionDef):
            return False
        for decorator in frame.decorators:
            target = decorator.decorator.func if isinstance(decorator.decorator, cst.Call) else decorator.decorator
            qualified = self.ctx.qualified_name(target) or ""
            if qualified in CACHE_DECORATORS or qualified.endswith(_CACHE_DECORATOR_ENDINGS):
                return True
        return False

    def extra_guard(self, node: cst.CSTNode, child: cst.CSTNode, variant) -> bool:
        """A block that ends with `return`, `break` or `raise` runs at most once
        in the loop around it (an early-stop branch that restores the best
        checkpoint and leaves): what it loads is not loaded again."""
        return leaves_the_loop(child)

    def memoised(self, candidate: Candidate) -> bool:
        return self._memoised.get(id(candidate.frame), False)

    def per_sample(self, frame: FrameNode) -> bool:
        if isinstance(frame, cst.FunctionDef):
            return frame.name.value in PER_SAMPLE_FUNCTIONS or self.ctx.loops.is_generator(frame)
        return False

    def leave_Module(self, node: cst.Module) -> None:
        for candidate in self.candidates:
            if self.memoised(candidate) or self.per_sample(candidate.frame):
                continue
            repetition = self.repetition(candidate)
            if repetition is not None:
                self.emit(candidate, repetition)

    def emit(self, candidate: Candidate, repetition: Repetition) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def repeated_estimate(self, repetition: Repetition, what: str) -> SavingsEstimate:
        """(iterations - 1) extra `what` for a literal count, else the typical range."""
        count = repetition.loop.count
        if count:
            low = high = float(max(count - 1, 0))
            assumptions = (f"the loop runs {count} times (literal or default argument in the code)",)
        else:
            low, high = UNKNOWN_REPEATS
            assumptions = (f"the iteration count is not literal: {UNKNOWN_COUNT}",)
        return SavingsEstimate(
            metric="repeated_work",
            low=low,
            high=high,
            unit=f"extra {what}",
            basis=f"(iterations - 1) repetitions of the {what}; each costs its read/parse or start-up time, "
            "which the probe measures",
            hardware=self.ctx.hardware.key,
            assumptions=assumptions,
        )


# -- tf.data pipelines (GO104 here; GO517 and GO518 in efficiency read the same tracking) ------------------------

TF_FILE_SOURCES = frozenset(
    {
        "tensorflow.data.TFRecordDataset", "tensorflow.data.TextLineDataset", "tensorflow.data.FixedLengthRecordDataset",
        "tensorflow_datasets.load", "tensorflow.data.experimental.make_csv_dataset",
    }
)
TF_MEMORY_SOURCES = frozenset(
    {"tensorflow.data.Dataset.from_tensor_slices", "tensorflow.data.Dataset.from_tensors", "tensorflow.data.Dataset.list_files"}
)
TF_READS = re.compile(r"(read|decode|load|parse|open|imread)", re.IGNORECASE)
TF_MAPS = ("map", "interleave", "flat_map", "parallel_interleave")


@dataclass
class TFPipeline:
    """What a tf.data chain does, followed through `ds = ds.map(...)` reassignments."""

    node: cst.BaseExpression  # the last expression that extended it
    statement: Optional[cst.CSTNode]
    reads_files: bool
    has_cache: bool
    lists_files: bool = False
    source: str = ""  # the qualified name of the source call
    steps: tuple[cst.Call, ...] = ()  # the method calls after the source, source first

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(call.func.attr.value for call in self.steps)  # type: ignore[union-attr]


class TFDataPipelines:
    """The tf.data pipelines of a module: chains from a tf.data source, followed
    through `ds = ds.map(...)` reassignments and through functions of the module
    that build and return one. A rule feeds it from its `visit_Assign` (before
    the walker rebinds the target) and `visit_Return`."""

    def __init__(self, ctx: "FileContext") -> None:
        self.ctx = ctx
        self.pipelines: dict[str, TFPipeline] = {}
        self.returned: dict[str, TFPipeline] = {}  # function name -> the pipeline it returns

    def on_return(self, node: cst.Return) -> None:
        function = self.ctx.enclosing_function()
        if function is not None and node.value is not None:
            found = self.pipeline(node.value) if not isinstance(node.value, cst.Name) else self.pipelines.get(node.value.value)
            if found is not None:
                self.returned[function.name.value] = found

    def on_assign(self, node: cst.Assign) -> None:
        if len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name):
            found = self.pipeline(node.value)
            name = node.targets[0].target.value
            if found is not None:
                self.pipelines[name] = found
            else:
                self.pipelines.pop(name, None)

    def lookup(self, node: cst.BaseExpression) -> Optional[TFPipeline]:
        """The pipeline a name holds, or that a chain builds."""
        if isinstance(node, cst.Name):
            return self.pipelines.get(node.value)
        return self.pipeline(node)

    def pipeline(self, node: cst.BaseExpression) -> Optional[TFPipeline]:
        """Follow a method chain down to its source."""
        methods: list[cst.Call] = []
        current = node
        while isinstance(current, cst.Call) and isinstance(current.func, cst.Attribute) and self.ctx.call_name(current) is None:
            methods.append(current)
            current = current.func.value
        lists_files = False
        steps: tuple[cst.Call, ...] = ()
        source = ""
        if isinstance(current, cst.Name) and current.value in self.pipelines:
            base = self.pipelines[current.value]
            reads, cached, lists_files = base.reads_files, base.has_cache, base.lists_files
            steps, source = base.steps, base.source
        elif isinstance(current, cst.Call) and isinstance(current.func, cst.Name) and current.func.value in self.returned:
            # `train_ds = make_dataset(files)`: the pipeline a helper returns,
            # reported in the helper (where .cache() goes) unless extended here.
            base = self.returned[current.func.value]
            if not methods:
                return base
            reads, cached, lists_files = base.reads_files, base.has_cache, base.lists_files
            steps, source = base.steps, base.source
        elif isinstance(current, cst.Call):
            qualified = self.ctx.call_name(current)
            if qualified in TF_FILE_SOURCES:
                reads, cached = True, False
            elif qualified in TF_MEMORY_SOURCES:
                reads, cached = False, False
                lists_files = qualified.endswith("list_files")
            else:
                return None
            source = qualified
        else:
            return None
        for call in reversed(methods):  # source first
            method = call.func.attr.value
            if method == "cache":
                cached = True
            elif method in TF_MAPS and call.args:
                # A map over file names reads the files; other maps read when
                # their function does (a lambda, a def or a factory of the module).
                if lists_files or self.map_reads(call):
                    reads = True
                    cached = False  # a cache before the reading step does not save the reading
        return TFPipeline(node, self.ctx.enclosing_statement(), reads, cached, lists_files, source, steps + tuple(reversed(methods)))

    def map_reads(self, call: cst.Call) -> bool:
        """The function of a `.map()`/`.interleave()` reads or decodes."""
        return bool(call.args) and bool(TF_READS.search(self.function_text(call.args[0].value)))

    def function_text(self, node: cst.BaseExpression) -> str:
        target = node
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Name):
            target = node.func  # a factory: make_parser(...) returns the map function
        if isinstance(target, cst.Name):
            bound = self.ctx.names.lookup(target.value)
            if isinstance(bound, cst.FunctionDef):
                return self.ctx.module.code_for_node(bound)
        return self.ctx.module.code_for_node(node)
