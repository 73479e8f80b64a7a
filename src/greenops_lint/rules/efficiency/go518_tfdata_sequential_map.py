"""GO518 tfdata-sequential-map: a file-reading tf.data pipeline maps one element at a time."""

from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import get_arg, has_star_kwargs, literal_value
from greenops_lint.analysis.names import Imported
from greenops_lint.analysis.rewrite import with_keyword
from greenops_lint.analysis.tfdata import TFDataPipelines, TracksTFData
from greenops_lint.analysis.tree import is_test_file
from greenops_lint.finding import Fix, SavingsEstimate
from greenops_lint.rule import Invalid, Rule
from greenops_lint.savings import SOURCE_DERIVED
from greenops_lint.walker import children

# -- estimate (`## Estimate`): a parallel map runs up to one element per core at a time. The input stage gains
# up to the cores it gets (8 assumed, a typical share of a GPU host's cores per GPU), assuming linear scaling
# (the best case); the training step gains only while input is its bottleneck, so 1x is the low end. (The
# tf.data guide's own timings are simulated with sleeps, so they are not used as a figure.) An interleave runs
# at most `cycle_length` inputs at once. A map through tf.py_function/tf.numpy_function gains ~1x: these hold
# the GIL, which "will preclude efficient parallelization" (TensorFlow's tf.numpy_function docs).
ASSUMED_CORES = 8
# The position of num_parallel_calls: Dataset.map(map_func, num_parallel_calls, ...),
# Dataset.interleave(map_func, cycle_length, block_length, num_parallel_calls, ...).
_POSITION = {"map": 1, "interleave": 3}
# Ops that make a map function stateful, which keeps tf.data's default `map_parallelization` rewrite from
# running the map in parallel itself: random ops (not the `stateless_` ones), Python functions, tf.print.
_STATEFUL_OP = re.compile(r"\.random\.(?!stateless)|\.random_|py_func|numpy_function|^tensorflow\.print$")
# Python functions: they hold the GIL, so a parallel map of them runs about one element at a time anyway.
_PYTHON_OP = re.compile(r"py_func|numpy_function")
# Calls that run while the function is traced (or are builtins): no op in the graph.
_TRACE_TIME = ("builtins.", "numpy.", "math.")
_MAX_DEPTH = 6


class TFDataSequentialMap(TracksTFData, Rule):
    """Maps a file-reading tf.data pipeline one element at a time (no `num_parallel_calls`).

    ## What it does
    Flags `.interleave(fn)`, and `.map(fn)` whose function is stateful (a
    random op such as `tf.image.random_flip_left_right` or
    `tf.random.shuffle`, `tf.py_function`/`tf.numpy_function`, `tf.print`,
    followed into the module's own functions), on a `tf.data` pipeline
    without `num_parallel_calls`, where the pipeline reads or decodes files:
    its source is `TFRecordDataset`, `TextLineDataset`, `tfds.load`,
    `make_csv_dataset`, or the mapped function reads or decodes
    (`tf.io.read_file`, `decode_jpeg`, `parse_example`, ...). Pipelines are
    followed through `ds = ds.map(...)` reassignments and helpers that build
    and return them (the tracking GO104 uses).

    ## Why is this bad
    Without `num_parallel_calls`, tf.data runs an interleave, and a map
    whose function is stateful, on one element at a time on one core, and
    the training step waits for it when decoding is the bottleneck. The
    tf.data performance guide: "use the `num_parallel_calls` argument ... to
    parallelize the data transformation", with `tf.data.AUTOTUNE` choosing
    the level. The element order stays the same (`deterministic` defaults
    to True). A map of stateless ops is parallelized by tf.data itself:
    its `map_parallelization` optimization (on by default, as documented
    since TensorFlow 2.7, while autotuning is on) rewrites it into a
    parallel map with AUTOTUNE; stateful functions are left sequential.

    Not flagged: a `.map` whose function the module shows to be stateless
    (tf.data parallelizes it), in-memory pipelines
    (`from_tensor_slices(arrays)`) whose map does not read, `map` with
    `num_parallel_calls` (any value) or `**kwargs`, test files.

    ## Example
    ```python
    def parse_and_flip(record):
        image = tf.io.decode_jpeg(tf.io.parse_single_example(record, FEATURES)["image"])
        return tf.image.random_flip_left_right(image)  # a stateful random op

    ds = tf.data.TFRecordDataset(files).map(parse_and_flip)  # GO518
    ```

    ## Fix
    `.map(parse_and_flip, num_parallel_calls=tf.data.AUTOTUNE)`. The automatic
    fix adds that argument; it is safe (deterministic order is kept).

    ## Estimate
    Time factor of the input pipeline: 1x (the step is GPU-bound) up to the
    cores the map can use (8 assumed), assuming it scales linearly with
    them (the best case); the step time gains while input is the
    bottleneck. An `.interleave` with a literal `cycle_length` gains at most
    that many times. A map whose function calls `tf.py_function` or
    `tf.numpy_function` gains ~1x: these hold the Python GIL, which
    TensorFlow's docs say "will preclude efficient parallelization".

    ## When it is material
    When the map stays sequential and can gain from parallel calls. Reported
    at severity info (hidden unless `--show-info`): a `.map` whose function
    calls code the module does not show (an imported helper, a callable
    object; if that code is stateless, tf.data already runs the map in
    parallel), a map through `tf.py_function`/`tf.numpy_function` (~1x),
    and an interleave with `cycle_length=1`.
    """

    code = "GO518"
    name = "tfdata-sequential-map"
    family = "efficiency"
    estimate_sources = {
        SOURCE_DERIVED: "any hardware: one element per core, up to 8 cores assumed for input, scaling linearly "
        "(the best case); ~1x for Python functions, which hold the GIL",
    }
    fixable = True
    fix_safety = "safe"
    tokens = ("TFRecordDataset", "TextLineDataset", "tfds", "list_files", "from_tensor_slices", "make_csv_dataset")
    INVALID = [
        Invalid(
            """
            import tensorflow as tf
            def parse_example(record):
                image = tf.io.decode_jpeg(tf.io.parse_tensor(record, tf.string))
                return tf.image.random_flip_left_right(image)
            ds = tf.data.TFRecordDataset(files).map(parse_example).batch(32)
            model.fit(ds, epochs=10)
            """,
            line=5,
            message="runs parse_example on one element at a time",
            fixed="""
            import tensorflow as tf
            def parse_example(record):
                image = tf.io.decode_jpeg(tf.io.parse_tensor(record, tf.string))
                return tf.image.random_flip_left_right(image)
            ds = tf.data.TFRecordDataset(files).map(parse_example, num_parallel_calls=tf.data.AUTOTUNE).batch(32)
            model.fit(ds, epochs=10)
            """,
        ),
        Invalid(
            """
            import tensorflow as tf

            def load_image(path, label):
                image = tf.image.decode_jpeg(tf.io.read_file(path), channels=3)
                return tf.image.random_crop(image, (224, 224, 3)), label

            ds = tf.data.Dataset.from_tensor_slices((paths, labels))
            ds = ds.shuffle(1000)
            ds = ds.map(load_image)
            """,
            line=9,
        ),
        """
        import tensorflow as tf
        ds = tf.data.Dataset.list_files(pattern).interleave(tf.data.TFRecordDataset, cycle_length=4)
        """,
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
        # A stateless map: tf.data's default map_parallelization runs it in parallel.
        """
        import tensorflow as tf
        def parse_example(record):
            example = tf.io.parse_single_example(record, FEATURES)
            return tf.io.decode_jpeg(example["image"]), example["label"]
        ds = tf.data.TFRecordDataset(files).map(parse_example)
        ds = tf.data.TFRecordDataset(files).map(lambda r: tf.io.parse_single_example(r, FEATURES))
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
        self._defs: Optional[dict[str, list[cst.FunctionDef]]] = None  # every def of the module, by name

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
        state = "stateful" if func.attr.value == "interleave" else self._map_state(node.args[0].value)
        if state == "stateless":
            return  # tf.data's default map_parallelization runs this map in parallel already
        self.seen.add(id(node))
        function = self.ctx.snippet(node.args[0].value, 32)
        why = {
            "stateful": " (its random or Python ops keep tf.data from parallelizing it itself)"
            if func.attr.value == "map"
            else "",
            "python": " (its tf.py_function/tf.numpy_function holds the GIL, so it gains little in parallel)",
            "unknown": " (tf.data parallelizes a map of stateless ops itself; this function calls code the module "
            "does not show)",
        }[state]
        estimate = self._estimate(node, state)
        self.report(
            node,
            f".{func.attr.value}() runs {function} on one element at a time in a pipeline that reads or decodes files"
            f"{why}; pass num_parallel_calls=tf.data.AUTOTUNE (the element order is kept)",
            estimate,
            fix=self._fix(node),
            severity="info" if state == "unknown" or estimate.high <= 1.0 else None,
        )

    def _estimate(self, node: cst.Call, state: str) -> SavingsEstimate:
        """Up to one element per core (linear scaling, the best case); an interleave's literal cycle_length
        caps it; a Python function holding the GIL gains ~1x."""
        func = node.func
        assert isinstance(func, cst.Attribute)
        high = float(ASSUMED_CORES)
        basis = (
            "tf.data performance guide: parallelize the map with num_parallel_calls; a parallel map runs one "
            f"element per core, up to the {ASSUMED_CORES} cores assumed for input, scaling linearly (the best case); "
            "1x when the step is GPU-bound"
        )
        assumptions = [
            f"{ASSUMED_CORES} CPU cores for the input pipeline, and linear scaling with them (the best case)",
            "the mapped function dominates the input cost",
        ]
        cycle = get_arg(node, "cycle_length", 1) if func.attr.value == "interleave" else None
        cycle_length = literal_value(cycle.value) if cycle is not None else None
        if type(cycle_length) is int and cycle_length > 0 and cycle_length < high:
            high = float(cycle_length)
            basis += f"; the interleave runs at most cycle_length={cycle_length} inputs at once"
        if state == "python":
            high = 1.0
            basis = (
                "tf.py_function/tf.numpy_function hold the Python GIL, which 'will preclude efficient parallelization' "
                "(TensorFlow's tf.numpy_function docs): num_parallel_calls gains ~1x for this map"
            )
            assumptions = ["the Python function dominates the map's cost"]
        return SavingsEstimate(
            metric="time_factor",
            low=1.0,
            high=high,
            unit="x input pipeline",
            basis=basis,
            hardware=self.ctx.hardware.key,
            assumptions=tuple(assumptions),
            source=SOURCE_DERIVED,
        )

    # -- is the mapped function stateful? ---------------------------------------------------
    def _map_state(self, function: cst.BaseExpression) -> str:
        """'stateful', 'stateless' or 'unknown' (it calls code the module does not show)."""
        target = function.func if isinstance(function, cst.Call) else function  # a factory: make_parser(...)
        qualified = self.ctx.qualified_name(target) if isinstance(target, (cst.Name, cst.Attribute)) else None
        if qualified is not None:
            if qualified.startswith("tensorflow."):
                if _PYTHON_OP.search(qualified):
                    return "python"
                return "stateful" if _STATEFUL_OP.search(qualified) else "stateless"
            return "unknown"
        nodes = [target] if isinstance(target, cst.Lambda) else self._functions(target)
        return self._state(nodes, 0, set()) if nodes else "unknown"

    def _functions(self, target: cst.BaseExpression) -> list[cst.CSTNode]:
        """The module's functions a name may call: its binding, else every def of that name."""
        if not isinstance(target, cst.Name):
            return []
        bound = self.ctx.names.lookup(target.value)
        if isinstance(bound, cst.FunctionDef):
            return [bound]
        if self._defs is None:
            self._defs = {}
            stack: list[cst.CSTNode] = [self.ctx.module]
            while stack:
                current = stack.pop()
                if type(current) is cst.FunctionDef:
                    self._defs.setdefault(current.name.value, []).append(current)
                stack.extend(children(current))
        return list(self._defs.get(target.value, ()))

    def _state(self, nodes: list[cst.CSTNode], depth: int, seen: set[int]) -> str:
        """'python' (a Python function: it holds the GIL), 'stateful', 'unknown' or 'stateless'."""
        unknown = stateful = False
        for root in nodes:
            if id(root) in seen:
                continue
            seen.add(id(root))
            stack: list[cst.CSTNode] = [root]
            while stack:
                current = stack.pop()
                stack.extend(children(current))
                if type(current) is not cst.Call:
                    continue
                qualified = self.ctx.call_name(current)
                if qualified is not None:
                    if qualified.startswith("tensorflow."):
                        if _PYTHON_OP.search(qualified):
                            return "python"
                        stateful = stateful or bool(_STATEFUL_OP.search(qualified))
                    elif not qualified.startswith(_TRACE_TIME):
                        unknown = True  # an imported function: not shown here
                elif type(current.func) is cst.Name:
                    called = self._functions(current.func)
                    state = self._state(called, depth + 1, seen) if called and depth < _MAX_DEPTH else "unknown"
                    if state == "python":
                        return state
                    stateful = stateful or state == "stateful"
                    unknown = unknown or state == "unknown"
                # a method call (`image.set_shape(...)`): a tensor's, assumed stateless
        return "stateful" if stateful else "unknown" if unknown else "stateless"

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
