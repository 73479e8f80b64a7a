"""GO104 tfdata-no-cache: a tf.data pipeline that reads and decodes the same files in every epoch."""

from __future__ import annotations

from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import get_arg, literal_value
from greenops_lint.analysis.candidates import Candidate
from greenops_lint.analysis.loops import Repetition
from greenops_lint.analysis.tfdata import TFDataPipelines, TFPipeline, TracksTFData, fit_data
from greenops_lint.finding import SavingsEstimate
from greenops_lint.rule import Invalid
from greenops_lint.rules.caching._shared import UNKNOWN_REPEATS, RepeatedWorkRule
from greenops_lint.savings import SOURCE_COUNTED

# -- estimate (`## Estimate`): (epochs - 1) extra passes when the epoch count is literal, else `UNKNOWN_REPEATS`
REPEATED = "passes over the files"
BASIS = "tf.data guide: with .cache() file opening and reading run only in the first epoch"


class TFDataNoCache(TracksTFData, RepeatedWorkRule):
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
    estimate_sources = {
        SOURCE_COUNTED: "any hardware: (epochs - 1) from a literal epoch count",
    }
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
        self.tf = TFDataPipelines(ctx)
        self.reported: set[int] = set()

    def visit_Call(self, node: cst.Call) -> None:
        data = fit_data(node)
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
            self._emit_pipeline(
                pipe,
                f"each of the {count} epochs of .fit()" if isinstance(count, int) else "every epoch of .fit()",
                count if isinstance(count, int) else None,
            )

    def visit_For(self, node: cst.For) -> None:
        pipe = self._consumed(self.tf.iterated(node))
        if pipe is None:
            return
        repeat = _repeat(pipe)
        if repeat is not None:
            # `ds.repeat(epochs)` iterated in one loop: the epochs are the repeats.
            count = literal_value(repeat.args[0].value) if repeat.args else None
            count = count if isinstance(count, int) and not isinstance(count, bool) else None
            text = self.ctx.snippet(repeat.args[0].value, 30) if repeat.args else ""
            where = f"each of the {count} passes of .repeat({count})" if count else f"every pass of .repeat({text})"
            self._emit_pipeline(pipe, where, count)
            return
        self.record(node, "pipeline", outer_only=True, pipe=pipe)  # the loops around this for, not itself

    def _consumed(self, node: cst.BaseExpression) -> Optional[TFPipeline]:
        pipe = self.tf.lookup(node)
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
            "add .cache() after the deterministic map (before shuffle, augmentation and batch), or "
            ".cache(filename) on local disk when the decoded data does not fit in memory",
            SavingsEstimate(
                metric="repeated_work",
                low=low,
                high=high,
                unit=f"extra {REPEATED}",
                basis=BASIS,
                hardware=self.ctx.hardware.key,
                source=SOURCE_COUNTED,
                assumptions=("the epoch count is literal" if count else "the epoch count is not literal",),
            ),
            statement=pipe.statement,
        )


def _repeat(pipe: TFPipeline) -> Optional[cst.Call]:
    """The `.repeat(n)` (n not literal, or more than 1; or none: forever) of an
    uncached reading chain: every pass reads the files again."""
    for call in reversed(pipe.steps):
        if isinstance(call.func, cst.Attribute) and call.func.attr.value == "repeat":
            count = literal_value(call.args[0].value) if call.args else None
            if isinstance(count, int) and not isinstance(count, bool) and count <= 1:
                return None
            return call
    return None
