"""GO517 tfdata-no-prefetch: a tf.data pipeline fed to training without .prefetch() at its end."""

from __future__ import annotations

import re

import libcst as cst

from greenops_lint.analysis.efficiency import TrainingLoops
from greenops_lint.analysis.tfdata import TF_MAPS, TFDataPipelines, TFPipeline, TracksTFData, fit_data
from greenops_lint.analysis.tree import is_test_file
from greenops_lint.finding import SavingsEstimate
from greenops_lint.rule import Invalid
from greenops_lint.rules.efficiency._shared import LoopBoundRule
from greenops_lint.savings import SOURCE_DERIVED

# -- estimate (`## Estimate`): the tf.data guide's model of prefetching. Without it the step takes the sum of the
# input time and the training time; with it, their maximum: (t_in + t_train) / max(t_in, t_train), 1x to 2x.
TIME_FACTOR_LOW = 1.0
TIME_FACTOR_HIGH = 2.0
# Steps that may follow the prefetch without undoing it.
_AFTER_PREFETCH_OK = frozenset({"prefetch", "repeat", "take", "skip", "with_options", "cache", "apply"})
# Sources that prefetch themselves when used as they come.
_SELF_PREFETCHING = frozenset({"tensorflow_datasets.load"})
# TensorFlow 2.12 and later inject a prefetch after a synchronous last transformation
# (`tf.data.experimental.OptimizationOptions.inject_prefetch`, default True; 2.10's docs
# say False): the finding is material only where the file switches that off.
_INJECTION_OFF = re.compile(r"\b(inject_prefetch|apply_default_optimizations)\s*=\s*False\b")


class TFDataNoPrefetch(TracksTFData, LoopBoundRule):
    """Feeds a tf.data pipeline to training without `.prefetch()` at its end.

    ## What it does
    Flags a `tf.data` pipeline (from `TFRecordDataset`, `TextLineDataset`,
    `tfds.load`, `from_tensor_slices`, `list_files`, ...; followed through
    reassignments and helpers that return it, the tracking GO104 uses) that
    is passed to `model.fit(...)` or iterated by a training loop (a loop
    that computes gradients or calls a training step function) when the
    chain does not end with `.prefetch(...)` (a `repeat`/`take` after it is
    fine).

    ## Why is this bad
    Without prefetching, the input pipeline produces the next batch only
    when the training step asks for it, so each step takes the input time
    plus the training time. The tf.data performance guide: prefetching
    "overlaps the preprocessing and model execution of a training step"
    and reduces the step time "to the maximum (as opposed to the sum) of the
    training and the time it takes to extract the data"; it recommends
    `.prefetch(tf.data.AUTOTUNE)` at the end of every input pipeline.

    Not flagged: a `tfds.load(...)` dataset used as it comes (TFDS adds a
    prefetch), pipelines handed to `strategy.experimental_distribute_dataset`
    or other wrappers (not followed), test files.

    Reported at info unless the file turns tf.data's automatic prefetch off
    (`inject_prefetch = False` or `apply_default_optimizations = False`):
    TensorFlow 2.12 and later inject a prefetch after a synchronous last
    transformation by default (`tf.data.experimental.OptimizationOptions`),
    so on a current TensorFlow the missing `.prefetch()` usually costs
    nothing; an explicit one still documents the intent and works on older
    versions.

    ## Example
    ```python
    ds = tf.data.TFRecordDataset(files).map(parse, num_parallel_calls=AUTOTUNE).batch(64)
    model.fit(ds, epochs=10)  # GO517 (at the pipeline)
    ```

    ## Fix
    End the pipeline with `.prefetch(tf.data.AUTOTUNE)`.

    ## Estimate
    Time factor of the training step: (input + training) / max(input,
    training), 1x when one side is negligible to 2x when they are equal
    (the guide's model; derived, not measured).

    ## When it is material
    When the file turns tf.data's prefetch injection off (above) and
    producing a batch takes time: the pipeline reads or decodes files or
    maps a function. An in-memory pipeline without a map
    (`from_tensor_slices(arrays).batch(n)`) costs little per batch: reported
    at info.
    """

    code = "GO517"
    name = "tfdata-no-prefetch"
    estimate_sources = {
        SOURCE_DERIVED: "any hardware: the tf.data guide's model, (input + training) / max(input, training)",
    }
    track_call_sites = False
    uses_guards = False
    tokens = ("TFRecordDataset", "TextLineDataset", "tfds", "list_files", "from_tensor_slices", "make_csv_dataset")
    INVALID = [
        Invalid(
            """
            import tensorflow as tf
            ds = tf.data.TFRecordDataset(files).map(parse_example, num_parallel_calls=tf.data.AUTOTUNE).batch(32)
            model.fit(ds, epochs=10)
            """,
            line=2,
            message="without .prefetch() at its end",
        ),
    ]
    VALID = [
        """
        import tensorflow as tf
        ds = tf.data.TFRecordDataset(files).map(parse_example, num_parallel_calls=tf.data.AUTOTUNE).batch(32)
        ds = ds.prefetch(tf.data.AUTOTUNE).repeat()
        model.fit(ds, epochs=10, steps_per_epoch=100)
        """,
        # Not fed to training.
        """
        import tensorflow as tf
        ds = tf.data.TFRecordDataset(files).map(parse_example).batch(32)
        for batch in ds.take(1):
            print(batch)
        """,
        # tfds as it comes prefetches itself.
        """
        import tensorflow_datasets as tfds
        ds = tfds.load("mnist", split="train", as_supervised=True)
        model.fit(ds, epochs=3)
        """,
    ]

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        self.tf = TFDataPipelines(ctx)
        self.fed: list[tuple[TFPipeline, str]] = []  # pipelines passed to fit
        self.loops: list[tuple[cst.For, TFPipeline]] = []  # pipelines iterated by a for loop

    def check_call(self, node: cst.Call) -> None:
        data = fit_data(node)
        pipe = self.tf.lookup(data.value) if data is not None else None
        if pipe is not None:
            self.fed.append((pipe, ".fit()"))

    def visit_For(self, node: cst.For) -> None:
        pipe = self.tf.lookup(self.tf.iterated(node))
        if pipe is not None:
            self.loops.append((node, pipe))

    def leave_Module(self, node: cst.Module) -> None:
        if is_test_file(self.ctx.path):
            return
        training = TrainingLoops(self.ctx.loops, self.train_frames)
        fed = list(self.fed)
        for loop_node, pipe in self.loops:
            info = next((loop for loop in self.ctx.loops.loops if loop.node is loop_node), None)
            if info is not None and training.trains(info):
                fed.append((pipe, "a training loop"))
        reported: set[int] = set()
        for pipe, consumer in fed:
            if id(pipe.node) in reported or _prefetched(pipe):
                continue
            reported.add(id(pipe.node))
            self._report(pipe, consumer)

    def _report(self, pipe: TFPipeline, consumer: str) -> None:
        costly = pipe.reads_files or pipe.lists_files or any(m in TF_MAPS for m in pipe.methods)
        injection_off = bool(_INJECTION_OFF.search(self.ctx.text))
        self.report(
            pipe.node,
            f"this tf.data pipeline feeds {consumer} without .prefetch() at its end, so each step waits for its input "
            "to be produced; end it with .prefetch(tf.data.AUTOTUNE)",
            SavingsEstimate(
                metric="time_factor",
                low=TIME_FACTOR_LOW,
                high=TIME_FACTOR_HIGH if costly else 1.1,
                unit="x",
                basis="tf.data performance guide: prefetching makes the step time the maximum, not the sum, of the "
                "input and the training time: (t_in + t_train) / max(t_in, t_train)",
                hardware=self.ctx.hardware.key,
                assumptions=(
                    "the pipeline reads, decodes or maps per element"
                    if costly
                    else "an in-memory pipeline without a map: producing a batch is cheap",
                    "the file turns tf.data's prefetch injection off"
                    if injection_off
                    else "TensorFlow before 2.12: later versions inject a prefetch after a synchronous last step (~1x)",
                ),
                source=SOURCE_DERIVED,
            ),
            statement=pipe.statement,
            severity=None if costly and injection_off else "info",
        )


def _prefetched(pipe: TFPipeline) -> bool:
    methods = pipe.methods
    if not methods:
        return pipe.source in _SELF_PREFETCHING
    if "prefetch" not in methods:
        return False
    last = len(methods) - 1 - methods[::-1].index("prefetch")
    return all(m in _AFTER_PREFETCH_OK for m in methods[last:])
