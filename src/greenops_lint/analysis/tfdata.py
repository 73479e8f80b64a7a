"""tf.data pipelines of a module, for the rules that read them (GO104 in caching,
GO517 and GO518 in efficiency): a chain from a tf.data source, followed through
`ds = ds.map(...)` reassignments and through functions that build and return one."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import libcst as cst

from greenops_lint.analysis.calls import get_arg

if TYPE_CHECKING:  # pragma: no cover
    from greenops_lint.context import FileContext

TF_FILE_SOURCES = frozenset(
    {
        "tensorflow.data.TFRecordDataset",
        "tensorflow.data.TextLineDataset",
        "tensorflow.data.FixedLengthRecordDataset",
        "tensorflow_datasets.load",
        "tensorflow.data.experimental.make_csv_dataset",
    }
)
TF_MEMORY_SOURCES = frozenset(
    {
        "tensorflow.data.Dataset.from_tensor_slices",
        "tensorflow.data.Dataset.from_tensors",
        "tensorflow.data.Dataset.list_files",
    }
)
TF_READS = re.compile(r"(read|decode|load|parse|open|imread)", re.IGNORECASE)
TF_MAPS = ("map", "interleave", "flat_map", "parallel_interleave")
# What a `for` loop may wrap a dataset in and still iterate it: `for step, batch in enumerate(ds)`.
ITERATION_WRAPPERS = frozenset({"builtins.enumerate", "tqdm.tqdm", "tqdm.auto.tqdm", "builtins.iter"})


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
    the walker rebinds the target) and `visit_Return`: see `TracksTFData`."""

    def __init__(self, ctx: "FileContext") -> None:
        self.ctx = ctx
        self.pipelines: dict[str, TFPipeline] = {}
        self.returned: dict[str, TFPipeline] = {}  # function name -> the pipeline it returns

    def on_return(self, node: cst.Return) -> None:
        function = self.ctx.enclosing_function()
        if function is not None and node.value is not None:
            found = (
                self.pipeline(node.value)
                if not isinstance(node.value, cst.Name)
                else self.pipelines.get(node.value.value)
            )
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

    def iterated(self, node: cst.For) -> cst.BaseExpression:
        """What a `for` loop iterates, unwrapped from `enumerate(...)`, `tqdm(...)`, `iter(...)`."""
        iterable = node.iter
        while isinstance(iterable, cst.Call) and self.ctx.call_name(iterable) in ITERATION_WRAPPERS and iterable.args:
            iterable = iterable.args[0].value
        return iterable

    def pipeline(self, node: cst.BaseExpression) -> Optional[TFPipeline]:
        """Follow a method chain down to its source."""
        methods: list[cst.Call] = []
        current = node
        while (
            isinstance(current, cst.Call)
            and isinstance(current.func, cst.Attribute)
            and self.ctx.call_name(current) is None
        ):
            methods.append(current)
            current = current.func.value
        lists_files = False
        steps: tuple[cst.Call, ...] = ()
        source = ""
        if isinstance(current, cst.Name) and current.value in self.pipelines:
            base = self.pipelines[current.value]
            reads, cached, lists_files = base.reads_files, base.has_cache, base.lists_files
            steps, source = base.steps, base.source
        elif (
            isinstance(current, cst.Call) and isinstance(current.func, cst.Name) and current.func.value in self.returned
        ):
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
        return TFPipeline(
            node, self.ctx.enclosing_statement(), reads, cached, lists_files, source, steps + tuple(reversed(methods))
        )

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


def fit_data(node: cst.Call) -> Optional[cst.Arg]:
    """The data argument of a `.fit(x, ...)` call; None for any other call."""
    func = node.func
    if not (isinstance(func, cst.Attribute) and func.attr.value == "fit"):
        return None
    return get_arg(node, "x", 0)


class TracksTFData:
    """Mixin for a rule that reads tf.data pipelines: `self.tf`, fed from the
    rule's `visit_Assign` (which runs before the walker rebinds the target, so
    `ds = ds.map(...)` still sees the previous pipeline) and `visit_Return`."""

    tf: TFDataPipelines

    def visit_Return(self, node: cst.Return) -> None:
        self.tf.on_return(node)

    def visit_Assign(self, node: cst.Assign) -> None:
        self.tf.on_assign(node)
