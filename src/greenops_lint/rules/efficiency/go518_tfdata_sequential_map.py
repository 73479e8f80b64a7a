"""GO518 tfdata-sequential-map: a file-reading tf.data pipeline maps one element at a time."""

from __future__ import annotations

from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import get_arg, has_star_kwargs
from greenops_lint.analysis.names import Imported
from greenops_lint.analysis.rewrite import with_keyword
from greenops_lint.analysis.tfdata import TFDataPipelines, TracksTFData
from greenops_lint.analysis.tree import is_test_file
from greenops_lint.finding import Fix, SavingsEstimate
from greenops_lint.rule import Invalid, Rule
from greenops_lint.savings import SOURCE_DERIVED

# -- estimate (`## Estimate`): a parallel map runs up to one element per core at a time. The input stage gains
# up to the cores it gets (8 assumed, a typical share of a GPU host's cores per GPU); the training step gains
# only while input is its bottleneck, so 1x is the low end. (The tf.data guide's own timings are simulated
# with sleeps, so they are not used as a figure.)
ASSUMED_CORES = 8
# The position of num_parallel_calls: Dataset.map(map_func, num_parallel_calls, ...),
# Dataset.interleave(map_func, cycle_length, block_length, num_parallel_calls, ...).
_POSITION = {"map": 1, "interleave": 3}


class TFDataSequentialMap(TracksTFData, Rule):
    """Maps a file-reading tf.data pipeline one element at a time (no `num_parallel_calls`).

    ## What it does
    Flags `.map(fn)` and `.interleave(fn)` on a `tf.data` pipeline without
    `num_parallel_calls`, where the pipeline reads or decodes files: its
    source is `TFRecordDataset`, `TextLineDataset`, `tfds.load`,
    `make_csv_dataset`, or the mapped function reads or decodes
    (`tf.io.read_file`, `decode_jpeg`, `parse_example`, ...). Pipelines are
    followed through `ds = ds.map(...)` reassignments and helpers that build
    and return them (the tracking GO104 uses).

    ## Why is this bad
    Without `num_parallel_calls`, tf.data runs the map function on one
    element at a time on one core, and the training step waits for it when
    decoding is the bottleneck. The tf.data performance guide: "use the
    `num_parallel_calls` argument ... to parallelize the data
    transformation", with `tf.data.AUTOTUNE` choosing the level. The element
    order stays the same (`deterministic` defaults to True).

    Not flagged: in-memory pipelines (`from_tensor_slices(arrays)`) whose map
    does not read, `map` with `num_parallel_calls` (any value) or
    `**kwargs`, test files.

    ## Example
    ```python
    ds = tf.data.TFRecordDataset(files).map(parse_example)  # GO518
    ```

    ## Fix
    `.map(parse_example, num_parallel_calls=tf.data.AUTOTUNE)`. The automatic
    fix adds that argument; it is safe (deterministic order is kept).

    ## Estimate
    Time factor of the input pipeline: 1x (the step is GPU-bound) up to the
    cores the map can use (8 assumed); the step time gains while input is
    the bottleneck.
    """

    code = "GO518"
    name = "tfdata-sequential-map"
    family = "efficiency"
    estimate_sources = {
        SOURCE_DERIVED: "any hardware: one element per core, up to 8 cores assumed for input",
    }
    fixable = True
    fix_safety = "safe"
    tokens = ("TFRecordDataset", "TextLineDataset", "tfds", "list_files", "from_tensor_slices", "make_csv_dataset")
    INVALID = [
        Invalid(
            """
            import tensorflow as tf
            ds = tf.data.TFRecordDataset(files).map(parse_example).batch(32)
            model.fit(ds, epochs=10)
            """,
            line=2,
            message="runs parse_example on one element at a time",
            fixed="""
            import tensorflow as tf
            ds = tf.data.TFRecordDataset(files).map(parse_example, num_parallel_calls=tf.data.AUTOTUNE).batch(32)
            model.fit(ds, epochs=10)
            """,
        ),
        Invalid(
            """
            import tensorflow as tf

            def load_image(path, label):
                image = tf.image.decode_jpeg(tf.io.read_file(path), channels=3)
                return tf.image.resize(image, (224, 224)), label

            ds = tf.data.Dataset.from_tensor_slices((paths, labels))
            ds = ds.shuffle(1000)
            ds = ds.map(load_image)
            """,
            line=9,
        ),
    ]
    VALID = [
        """
        import tensorflow as tf
        ds = tf.data.TFRecordDataset(files).map(parse_example, num_parallel_calls=tf.data.AUTOTUNE)
        """,
        # In memory, no reading.
        """
        import tensorflow as tf
        ds = tf.data.Dataset.from_tensor_slices((x, y)).map(lambda a, b: (a / 255.0, b))
        """,
        # Not tf.data: a Hugging Face dataset and a pandas Series.
        """
        from datasets import load_dataset
        ds = load_dataset("imdb")["train"].map(tokenize_and_decode)
        labels = df["label"].map(decode_label)
        """,
        # Positional num_parallel_calls.
        """
        import tensorflow as tf
        AUTOTUNE = tf.data.AUTOTUNE
        ds = tf.data.TFRecordDataset(files).map(parse_example, AUTOTUNE)
        """,
    ]

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        self.tf = TFDataPipelines(ctx)
        self.seen: set[int] = set()

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if not (isinstance(func, cst.Attribute) and func.attr.value in _POSITION) or id(node) in self.seen:
            return
        if (
            not node.args
            or has_star_kwargs(node)
            or get_arg(node, "num_parallel_calls", _POSITION[func.attr.value]) is not None
        ):
            return
        if self.ctx.call_name(node) is not None or is_test_file(self.ctx.path):
            return
        upstream = self.tf.lookup(func.value)
        if upstream is None or not (upstream.reads_files or upstream.lists_files or self.tf.map_reads(node)):
            return
        self.seen.add(id(node))
        function = self.ctx.snippet(node.args[0].value, 32)
        self.report(
            node,
            f".{func.attr.value}() runs {function} on one element at a time in a pipeline that reads or decodes files; "
            "pass num_parallel_calls=tf.data.AUTOTUNE (the element order is kept)",
            SavingsEstimate(
                metric="time_factor",
                low=1.0,
                high=float(ASSUMED_CORES),
                unit="x input pipeline",
                basis="tf.data performance guide: parallelize the map with num_parallel_calls; a parallel map runs one "
                f"element per core, up to the {ASSUMED_CORES} cores assumed for input; 1x when the step is GPU-bound",
                hardware=self.ctx.hardware.key,
                assumptions=(
                    f"{ASSUMED_CORES} CPU cores for the input pipeline",
                    "the map function dominates the input cost",
                ),
                source=SOURCE_DERIVED,
            ),
            fix=self._fix(node),
        )

    def _fix(self, node: cst.Call) -> Optional[Fix]:
        alias = self._tf_alias()
        if alias is None:
            return None
        value = cst.parse_expression(f"{alias}.data.AUTOTUNE")
        return Fix(
            node,
            lambda updated: with_keyword(updated, "num_parallel_calls", value),
            safe=True,
            title="Add num_parallel_calls=tf.data.AUTOTUNE",
        )

    def _tf_alias(self) -> Optional[str]:
        for name, binding in self.ctx.names.scopes[0].names.items():
            if isinstance(binding, Imported) and binding.qualified == "tensorflow":
                return name
        return None
