"""GO104 tfdata-no-cache: a tf.data pipeline that reads and decodes the same files in every epoch."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import get_arg, literal_value
from greenops_lint.analysis.candidates import Candidate
from greenops_lint.analysis.loops import Repetition
from greenops_lint.finding import SavingsEstimate
from greenops_lint.rule import Invalid
from greenops_lint.rules.caching._shared import UNKNOWN_REPEATS, RepeatedWorkRule

# -- estimate (`## Estimate`): (epochs - 1) extra passes when the epoch count is literal, else `UNKNOWN_REPEATS`
REPEATED = "passes over the files"
BASIS = "tf.data guide: with .cache() file opening and reading run only in the first epoch"

_TF_FILE_SOURCES = frozenset(
    {
        "tensorflow.data.TFRecordDataset", "tensorflow.data.TextLineDataset", "tensorflow.data.FixedLengthRecordDataset",
        "tensorflow_datasets.load", "tensorflow.data.experimental.make_csv_dataset",
    }
)
_TF_MEMORY_SOURCES = frozenset(
    {"tensorflow.data.Dataset.from_tensor_slices", "tensorflow.data.Dataset.from_tensors", "tensorflow.data.Dataset.list_files"}
)
_ITERATION_WRAPPERS = frozenset({"builtins.enumerate", "tqdm.tqdm", "tqdm.auto.tqdm", "builtins.iter"})
_READS = re.compile(r"(read|decode|load|parse|open|imread)", re.IGNORECASE)


@dataclass
class TFPipeline:
    """What a tf.data chain does, followed through `ds = ds.map(...)` reassignments."""

    node: cst.BaseExpression  # the last expression that extended it
    statement: Optional[cst.CSTNode]
    reads_files: bool
    has_cache: bool
    lists_files: bool = False
    # `.repeat(n)` after the reads: None when absent, the count, or 0 when not literal (or forever)
    repeats: Optional[int] = None
    repeat_text: str = ""  # the argument of `.repeat(...)` as written


class TFDataNoCache(RepeatedWorkRule):
    """Reads and decodes the same files in every epoch of a tf.data pipeline.

    ## What it does
    Flags a `tf.data` pipeline that reads files (`TFRecordDataset`,
    `TextLineDataset`, `tfds.load`, or `list_files`/`from_tensor_slices`
    followed by a `.map()` or `.interleave()` that reads or decodes) and is
    consumed for several epochs (`model.fit(ds, epochs=N)` with N > 1 or not
    literal, a `for batch in ds:` inside an epoch loop, or a chain that
    repeats its reads with `.repeat(epochs)` and is iterated by one loop,
    `for step, batch in enumerate(ds)`) with no `.cache()`
    anywhere in the chain, following `ds = ds.map(...)` reassignments and
    pipelines that a function of the module builds and returns.

    ## Why is this bad
    Without a cache every epoch opens, reads and decodes every file again.
    The tf.data performance guide: with `.cache()`, the transformations before
    it "(like the file opening and data reading) are executed only during the
    first epoch".

    Not flagged: in-memory pipelines (`from_tensor_slices(arrays)` without a
    reading map), a chain with `.cache()` or `.cache(filename)` anywhere, a
    single epoch (`epochs=1`). When the data does not fit in memory, use
    `.cache(filename)` on local disk.

    ## Fix
    Insert `.cache()` after the deterministic, expensive steps (read, decode,
    resize) and before random augmentation, `shuffle` and `batch`.

    ## Estimate
    Repeated work: (epochs - 1) extra passes of reading and decoding, when the
    epoch count is literal.
    """

    code = "GO104"
    name = "tfdata-no-cache"
    family = "caching"
    loop_kinds = frozenset({"epoch"})
    tokens = ("TFRecordDataset", "TextLineDataset", "tfds", "list_files", "from_tensor_slices", "make_csv_dataset")
    INVALID = [
        Invalid(
            """
            import tensorflow as tf
            ds = tf.data.TFRecordDataset(files).map(parse_example).batch(32)
            model.fit(ds, epochs=10)
            """,
            line=2,
            message="reads and decodes its files again in each of the 10 epochs of .fit()",
        ),
    ]
    VALID = [
        """
        import tensorflow as tf
        ds = tf.data.TFRecordDataset(files).map(parse_example).cache().batch(32)
        model.fit(ds, epochs=10)
        """,
        """
        import tensorflow as tf
        ds = tf.data.Dataset.from_tensor_slices((x_train, y_train)).batch(32)
        model.fit(ds, epochs=10)
        """,
    ]

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        self.pipelines: dict[str, TFPipeline] = {}
        self.returned: dict[str, TFPipeline] = {}  # function name -> the pipeline it returns
        self.reported: set[int] = set()

    def visit_Return(self, node: cst.Return) -> None:
        function = self.ctx.enclosing_function()
        if function is not None and node.value is not None:
            found = self.pipeline(node.value) if not isinstance(node.value, cst.Name) else self.pipelines.get(node.value.value)
            if found is not None:
                self.returned[function.name.value] = found

    def pipeline(self, node: cst.BaseExpression) -> Optional[TFPipeline]:
        """Follow a method chain down to its source."""
        methods: list[cst.Call] = []
        current = node
        while isinstance(current, cst.Call) and isinstance(current.func, cst.Attribute) and self.ctx.call_name(current) is None:
            methods.append(current)
            current = current.func.value
        lists_files = False
        repeats: Optional[int] = None
        repeat_text = ""
        if isinstance(current, cst.Name) and current.value in self.pipelines:
            base = self.pipelines[current.value]
            reads, cached, lists_files, repeats = base.reads_files, base.has_cache, base.lists_files, base.repeats
            repeat_text = base.repeat_text
        elif isinstance(current, cst.Call) and isinstance(current.func, cst.Name) and current.func.value in self.returned:
            # `train_ds = make_dataset(files)`: the pipeline a helper returns,
            # reported in the helper (where .cache() goes) unless extended here.
            base = self.returned[current.func.value]
            if not methods:
                return base
            reads, cached, lists_files, repeats = base.reads_files, base.has_cache, base.lists_files, base.repeats
            repeat_text = base.repeat_text
        elif isinstance(current, cst.Call):
            qualified = self.ctx.call_name(current)
            if qualified in _TF_FILE_SOURCES:
                reads, cached = True, False
            elif qualified in _TF_MEMORY_SOURCES:
                reads, cached = False, False
                lists_files = qualified.endswith("list_files")
            else:
                return None
        else:
            return None
        for call in reversed(methods):  # source first
            method = call.func.attr.value
            if method == "cache":
                cached = True
            elif method == "repeat" and reads and not cached:
                count = literal_value(call.args[0].value) if call.args else None
                if not (isinstance(count, int) and not isinstance(count, bool) and count <= 1):
                    repeats = count if isinstance(count, int) and not isinstance(count, bool) else 0
                    repeat_text = self.ctx.snippet(call.args[0].value, 30) if call.args else ""
            elif method in ("map", "interleave", "flat_map", "parallel_interleave") and call.args:
                # A map over file names reads the files; other maps read when
                # their function does (a lambda, a def or a factory of the module).
                if lists_files or _READS.search(self._function_text(call.args[0].value)):
                    reads = True
                    cached = False  # a cache before the reading step does not save the reading
        return TFPipeline(node, self.ctx.enclosing_statement(), reads, cached, lists_files, repeats, repeat_text)

    def _function_text(self, node: cst.BaseExpression) -> str:
        target = node
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Name):
            target = node.func  # a factory: make_parser(...) returns the map function
        if isinstance(target, cst.Name):
            bound = self.ctx.names.lookup(target.value)
            if isinstance(bound, cst.FunctionDef):
                return self.ctx.module.code_for_node(bound)
        return self.ctx.module.code_for_node(node)

    def visit_Assign(self, node: cst.Assign) -> None:
        # Runs before the walker rebinds the target, so `ds = ds.map(...)`
        # still sees the previous pipeline.
        if len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name):
            found = self.pipeline(node.value)
            name = node.targets[0].target.value
            if found is not None:
                self.pipelines[name] = found
            else:
                self.pipelines.pop(name, None)

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if not (isinstance(func, cst.Attribute) and func.attr.value == "fit"):
            return
        data = get_arg(node, "x", 0)
        epochs = get_arg(node, "epochs", 2)
        if data is None or epochs is None:
            return
        count = literal_value(epochs.value)
        if isinstance(epochs.value, cst.Name):
            bound = self.ctx.value_of(epochs.value)
            count = literal_value(bound) if isinstance(bound, cst.BaseExpression) else count
        if isinstance(count, int) and not isinstance(count, bool) and count <= 1:
            return
        pipe = self._consumed(data.value)
        if pipe is not None:
            self._emit_pipeline(pipe, f"each of the {count} epochs of .fit()" if isinstance(count, int) else "every epoch of .fit()", count if isinstance(count, int) else None)

    def visit_For(self, node: cst.For) -> None:
        iterable = node.iter
        while isinstance(iterable, cst.Call) and self.ctx.call_name(iterable) in _ITERATION_WRAPPERS and iterable.args:
            iterable = iterable.args[0].value  # for step, batch in enumerate(ds)
        pipe = self._consumed(iterable)
        if pipe is None:
            return
        if pipe.repeats is not None:
            # `ds.repeat(epochs)` iterated in one loop: the epochs are the repeats.
            count = pipe.repeats or None
            where = f"each of the {count} passes of .repeat({count})" if count else f"every pass of .repeat({pipe.repeat_text})"
            self._emit_pipeline(pipe, where, count)
            return
        self.record(node, "pipeline", outer_only=True, pipe=pipe)  # the loops around this for, not itself

    def _consumed(self, node: cst.BaseExpression) -> Optional[TFPipeline]:
        if isinstance(node, cst.Name):
            pipe = self.pipelines.get(node.value)
        else:
            pipe = self.pipeline(node)
        return pipe if pipe is not None and pipe.reads_files and not pipe.has_cache else None

    def emit(self, candidate: Candidate, repetition: Repetition) -> None:
        loop = repetition.loop
        self._emit_pipeline(candidate.extra["pipe"], f"every iteration of the {loop.describe()}", loop.count)

    def _emit_pipeline(self, pipe: TFPipeline, where: str, count: Optional[int]) -> None:
        if id(pipe.node) in self.reported:
            return
        self.reported.add(id(pipe.node))
        low, high = (float(count - 1),) * 2 if count else UNKNOWN_REPEATS
        self.report(
            pipe.node,
            f"this tf.data pipeline reads and decodes its files again in {where}; "
            "add .cache() after the deterministic map (before shuffle, augmentation and batch)",
            SavingsEstimate(
                metric="repeated_work", low=low, high=high, unit=f"extra {REPEATED}",
                basis=BASIS,
                hardware=self.ctx.hardware.key,
                assumptions=("the epoch count is literal" if count else "the epoch count is not literal",),
            ),
            statement=pipe.statement,
        )
